"""Where the server keeps its records and files: an interface and its local-disk implementation.

Jobs, saved avatars and conversations are JSON *records* of a *kind*, each with an id the server
generated, plus named *files* (the video, the portrait). HTTP workers hold no state of their own
beyond caches: a shared implementation of :class:`Store` (a database for records, an object store
for files) lets several workers behind a load balancer serve the same jobs. :class:`LocalStore`
keeps everything under one folder and is what ``talkinghead serve`` uses.

Ids are made here (:func:`new_id`) and checked (:func:`check_id`) before they are used in a path;
nothing a client sends ever becomes part of a file name.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

log = logging.getLogger(__name__)

__all__ = ["Store", "LocalStore", "new_id", "check_id", "KINDS", "FILE_NAMES", "UnknownIdError"]

#: Record kinds and the prefix of their ids.
KINDS: dict[str, str] = {"job": "vid", "avatar": "av", "conversation": "conv"}
#: The only file names a record may have.
FILE_NAMES = frozenset({"video.mp4", "stream.mp4", "captions.vtt", "portrait.png", "thumb.jpg", "input.bin"})

_ID = re.compile(r"^(vid|av|conv)_[0-9a-f]{20}$")


class UnknownIdError(KeyError):
    """No record of that kind has that id (or the id is malformed)."""


def new_id(kind: str) -> str:
    """A fresh random id for a record of ``kind`` (``vid_…``, ``av_…``, ``conv_…``)."""
    return f"{KINDS[kind]}_{secrets.token_hex(10)}"


def check_id(kind: str, value: str) -> str:
    """Return ``value`` if it is a well-formed id of ``kind``; raise :class:`UnknownIdError` otherwise."""
    if not isinstance(value, str) or not _ID.match(value) or not value.startswith(KINDS[kind] + "_"):
        raise UnknownIdError(value)
    return value


@runtime_checkable
class Store(Protocol):
    """Records and their files, shared by every worker of one deployment.

    Records are JSON-serialisable dicts. ``update`` is an atomic read-modify-write: concurrent
    updates of one record never lose each other's changes. Files are written by a worker to the
    local path :meth:`file_path` gives and published with :meth:`commit_file`; readers get a local,
    readable path from :meth:`open_file` (a remote store may download to a cache there).
    """

    def put(self, kind: str, rid: str, record: dict[str, Any]) -> None:
        """Create or replace a record."""

    def get(self, kind: str, rid: str) -> dict[str, Any] | None:
        """The record, or None."""

    def update(self, kind: str, rid: str, change: Callable[[dict[str, Any]], dict[str, Any] | None]) -> dict[str, Any]:
        """Apply ``change`` to the record atomically (it edits in place or returns a new dict).

        Raises:
            UnknownIdError: no such record.
        """

    def delete(self, kind: str, rid: str) -> bool:
        """Remove the record and its files; False if there was none."""

    def ids(self, kind: str) -> list[str]:
        """Every id of ``kind``."""

    def file_path(self, kind: str, rid: str, name: str) -> Path:
        """A local path to write the file ``name`` of a record to (its folder exists)."""

    def commit_file(self, kind: str, rid: str, name: str) -> None:
        """Publish the file written at :meth:`file_path` to every worker."""

    def open_file(self, kind: str, rid: str, name: str) -> Path | None:
        """A local readable path of the file, or None if it does not exist."""


class LocalStore:
    """A :class:`Store` in one folder: ``<root>/<kind>/<id>/record.json`` and the record's files.

    Records are cached in memory and written through atomically (temporary file + rename), so a
    crash never leaves half a record. One process owns the folder.
    """

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        self._lock = threading.RLock()
        self._records: dict[tuple[str, str], dict[str, Any]] = {}
        for kind in KINDS:
            folder = self.root / kind
            folder.mkdir(parents=True, exist_ok=True)
            for sub in folder.iterdir():
                self._load(kind, sub)

    def _load(self, kind: str, folder: Path) -> None:
        try:
            check_id(kind, folder.name)
        except UnknownIdError:
            if folder.name.startswith(".tmp-"):
                shutil.rmtree(folder, ignore_errors=True)
            return
        path = folder / "record.json"
        try:
            self._records[(kind, folder.name)] = json.loads(path.read_text("utf-8"))
        except (OSError, ValueError) as exc:
            log.warning("dropping unreadable %s record %s: %s", kind, folder.name, exc)
            shutil.rmtree(folder, ignore_errors=True)

    def _folder(self, kind: str, rid: str) -> Path:
        check_id(kind, rid)
        return self.root / kind / rid

    def _write(self, kind: str, rid: str, record: dict[str, Any]) -> None:
        folder = self._folder(kind, rid)
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".record-{secrets.token_hex(4)}.json"
        tmp.write_text(json.dumps(record, separators=(",", ":")), "utf-8")
        os.replace(tmp, folder / "record.json")

    def put(self, kind: str, rid: str, record: dict[str, Any]) -> None:
        with self._lock:
            self._write(kind, rid, record)
            self._records[(kind, rid)] = json.loads(json.dumps(record))

    def get(self, kind: str, rid: str) -> dict[str, Any] | None:
        try:
            check_id(kind, rid)
        except UnknownIdError:
            return None
        with self._lock:
            record = self._records.get((kind, rid))
            return json.loads(json.dumps(record)) if record is not None else None

    def update(self, kind: str, rid: str, change: Callable[[dict[str, Any]], dict[str, Any] | None]) -> dict[str, Any]:
        with self._lock:
            current = self.get(kind, rid)
            if current is None:
                raise UnknownIdError(rid)
            result = change(current)
            record = current if result is None else result
            self.put(kind, rid, record)
            return json.loads(json.dumps(record))

    def delete(self, kind: str, rid: str) -> bool:
        try:
            folder = self._folder(kind, rid)
        except UnknownIdError:
            return False
        with self._lock:
            existed = self._records.pop((kind, rid), None) is not None
            if folder.exists():
                # rename first so that a half-deleted folder is never mistaken for a record
                trash = folder.with_name(f".tmp-{rid}-{secrets.token_hex(4)}")
                os.replace(folder, trash)
                shutil.rmtree(trash, ignore_errors=True)
            return existed

    def ids(self, kind: str) -> list[str]:
        with self._lock:
            return [rid for (k, rid) in self._records if k == kind]

    def file_path(self, kind: str, rid: str, name: str) -> Path:
        if name not in FILE_NAMES:
            raise ValueError(f"unknown record file name {name!r}")
        folder = self._folder(kind, rid)
        folder.mkdir(parents=True, exist_ok=True)
        return folder / name

    def commit_file(self, kind: str, rid: str, name: str) -> None:
        return None  # written in place: already visible to this (only) worker

    def open_file(self, kind: str, rid: str, name: str) -> Path | None:
        if name not in FILE_NAMES:
            return None
        try:
            path = self._folder(kind, rid) / name
        except UnknownIdError:
            return None
        return path if path.is_file() else None
