"""The batch report: one JSON line per job outcome, appended as each job ends.

The report is append-only. Each line is written whole and flushed to disk (``fsync``) before the
next job's outcome, so a killed batch leaves every finished job recorded; a line cut short by the
kill is ignored when the report is read back. Reading it back gives, per output path, the last
successful record — what resume compares a job's fingerprint and the output file against.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import OutputError

log = logging.getLogger(__name__)

__all__ = ["JobRecord", "Report", "file_sha256", "read_report"]

STATUSES = ("ok", "error", "skipped")


@dataclass
class JobRecord:
    """The outcome of one job (one line of the report).

    Attributes:
        id, line, output: which job.
        status: ``"ok"`` (rendered), ``"skipped"`` (already done: output matches the fingerprint)
            or ``"error"``.
        fingerprint: hash of the job's inputs and options (None for a row that could not be read).
        error: ``{"type", "message"}`` when the job failed.
        frames, duration: what was rendered.
        output_bytes, output_sha256: the output file as it was when the job ended.
        timings: seconds: ``setup`` (models and portrait), ``tts``, ``render``, ``total``.
        worker: which worker rendered it.
        engine: ``"local"`` or ``"ray"``.
    """

    id: str
    line: int
    output: str | None
    status: str
    fingerprint: str | None = None
    error: dict[str, Any] | None = None
    frames: int = 0
    duration: float = 0.0
    output_bytes: int | None = None
    output_sha256: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    worker: str = ""
    engine: str = ""

    @property
    def ok(self) -> bool:
        """True when the output exists as the job asked (rendered now or before)."""
        return self.status in ("ok", "skipped")

    def to_json(self) -> str:
        data = dict(self.__dict__)
        data["timings"] = {k: round(v, 4) for k, v in self.timings.items()}
        return json.dumps(data, ensure_ascii=False, sort_keys=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobRecord:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)


def read_report(path: str | os.PathLike) -> dict[str, JobRecord]:
    """The last successful record per output path (absolute) in a report; missing file → empty.

    Lines that are not valid JSON (a line cut short by a kill) are skipped.
    """
    path = Path(path)
    done: dict[str, JobRecord] = {}
    if not path.exists():
        return done
    with open(path, encoding="utf-8", errors="replace") as f:
        for n, text in enumerate(f, start=1):
            if not text.strip():
                continue
            try:
                record = JobRecord.from_dict(json.loads(text))
            except (json.JSONDecodeError, TypeError):
                log.warning("report %s line %d is incomplete or damaged; ignored", path, n)
                continue
            if record.output and record.ok and record.fingerprint:
                done[os.path.abspath(record.output)] = record
    return done


def iter_records(path: str | os.PathLike) -> Iterator[JobRecord]:
    """Every complete record of a report, in order."""
    with open(path, encoding="utf-8", errors="replace") as f:
        for text in f:
            try:
                yield JobRecord.from_dict(json.loads(text))
            except (json.JSONDecodeError, TypeError):
                continue


class Report:
    """Appends records to a JSONL file, one whole line at a time, durably (thread-safe)."""

    def __init__(self, path: str | os.PathLike | None) -> None:
        self.path = Path(path) if path is not None else None
        self._lock = threading.Lock()
        self._file = None
        if self.path is not None:
            if self.path.is_dir():
                raise OutputError(f"report path {self.path} is a directory; give a file name such as report.jsonl")
            try:
                self._file = open(self.path, "ab")
            except OSError as exc:
                raise OutputError(f"cannot write the report {self.path}: {exc.strerror or exc}") from exc
            # A previous run killed mid-line leaves a partial last line: start on a fresh line.
            if self._file.tell() > 0 and not _ends_with_newline(self.path):
                self._file.write(b"\n")

    def write(self, record: JobRecord) -> None:
        if self._file is None:
            return
        line = (record.to_json() + "\n").encode("utf-8")
        with self._lock:
            self._file.write(line)
            self._file.flush()
            os.fsync(self._file.fileno())

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def __enter__(self) -> Report:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"


def file_sha256(path: str | os.PathLike) -> tuple[int, str] | None:
    """(size, SHA-256) of a file, or None when it does not exist."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            size = 0
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
                size += len(block)
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.warning("cannot read %s: %s", path, exc)
        return None
    return size, digest.hexdigest()
