"""The weights cache: where files live, getting them, checking them, and :func:`resolve`, the one
way a backend turns a declared file into a path.

Layout of the weights directory::

    <weights dir>/
        checksums.json              hashes of verified files + verified stamps (size, mtime)
        <group>/<filename>          a complete, verified file
        <group>/<filename>.part     an unfinished download (resumed next time)
        .hf/<group>/                huggingface_hub's staging folder for hf:// downloads

The default weights directory is ``platformdirs.user_cache_dir("talkinghead")/weights``. The
environment variable ``TALKINGHEAD_CACHE`` (read, never written) replaces the
``user_cache_dir("talkinghead")`` part, so weights go to ``$TALKINGHEAD_CACHE/weights``; a
``cache_dir`` argument names the weights directory itself and wins over both.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import WeightsMissingError
from .catalog import WeightFile, WeightRegistry, build_registry
from .download import DownloadError, hf_download, host_of, http_download, human_url

log = logging.getLogger(__name__)

CACHE_ENV = "TALKINGHEAD_CACHE"
CHECKSUMS_FILE = "checksums.json"
TRUST_FLAG = "--trust-unverified"
_CHUNK = 1 << 20

#: ``progress(file, bytes_done, bytes_total)``; total is None when unknown.
FileProgress = Callable[[WeightFile, int, "int | None"], None]

OK, MISSING, CORRUPT = "ok", "missing", "corrupt"


class WeightsChecksumError(WeightsMissingError):
    """A downloaded or cached file does not have the expected size or SHA-256."""


class WeightsUnverifiedError(WeightsMissingError):
    """A file has no published SHA-256 and trust on first use was not accepted, so it was not
    downloaded. Accept it with ``talkinghead weights download --trust-unverified NAME`` (or
    ``WeightsManager(trust_unverified=True)``): the hash of that download is recorded and enforced
    from then on."""


# ----------------------------------------------------------------------------- the directory


def default_weights_dir(env: Mapping[str, str] | None = None) -> Path:
    """The weights directory when no ``cache_dir`` is given.

    Args:
        env: Environment to read (defaults to ``os.environ``; only read).
    """
    env = os.environ if env is None else env
    root = env.get(CACHE_ENV)
    if root:
        return Path(root).expanduser() / "weights"
    import platformdirs

    return Path(platformdirs.user_cache_dir("talkinghead")) / "weights"


def sha256_file(path: Path, progress: Callable[[int, int], None] | None = None) -> str:
    """The SHA-256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    total = path.stat().st_size
    done = 0
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
            done += len(chunk)
            if progress is not None:
                progress(done, total)
    return h.hexdigest()


class ChecksumStore:
    """The cache's ``checksums.json``: per file name, the SHA-256 of the last verified copy (the
    only hash there is for a file accepted by trust on first use) and a stamp (size, mtime) of
    the last full verification so loading does not rehash hundreds of megabytes every time."""

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()

    def load(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable %s: %s", self.path, exc)
            return {}
        return data if isinstance(data, dict) else {}

    def get(self, name: str) -> dict[str, Any]:
        entry = self.load().get(name)
        return entry if isinstance(entry, dict) else {}

    def update(self, name: str, **fields: Any) -> None:
        """Merge ``fields`` into the entry for ``name`` and write the file atomically."""
        with self._lock:
            data = self.load()
            entry = data.get(name) if isinstance(data.get(name), dict) else {}
            entry.update(fields)
            data[name] = entry
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".checksums.", suffix=".tmp", dir=self.path.parent)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    json.dump(data, f, indent=2, sort_keys=True)
                os.replace(tmp, self.path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise


@dataclass(frozen=True)
class FileStatus:
    """The state of one file in the cache.

    Attributes:
        file: The registry entry.
        path: Where the file is or should be.
        state: ``"ok"``, ``"missing"`` or ``"corrupt"``.
        detail: A human-readable reason (partial bytes, expected vs actual hash...).
        sha256: The hash computed during the check, if one was computed.
    """

    file: WeightFile
    path: Path
    state: str
    detail: str = ""
    sha256: str | None = None

    @property
    def ok(self) -> bool:
        return self.state == OK


# ----------------------------------------------------------------------------- the manager


class WeightsManager:
    """Finds, downloads and verifies weight files in one cache directory.

    >>> wm = WeightsManager()                                   # doctest: +SKIP
    >>> paths = wm.require("sadtalker-full", download=True)     # doctest: +SKIP

    Args:
        cache_dir: The weights directory. Default: ``$TALKINGHEAD_CACHE/weights`` if that
            variable is set, else ``platformdirs.user_cache_dir("talkinghead")/weights``.
        registry: The files known (default: catalogue + every backend's ``weights``).
        hf_endpoint: Hugging Face Hub endpoint for ``hf://`` URLs (default the public Hub).
        hf_token: Token for the Hub (None: huggingface_hub's usual lookup).
        retries: Retries per URL after transient failures.
        backoff: First back-off delay in seconds (doubles per retry).
        timeout: Connect/read timeout in seconds.
        session: A ``requests.Session`` for HTTP(S) URLs (e.g. with proxies); one per call if None.
        sleep: Sleep function used for back-off (tests pass a no-op).
        trust_unverified: Download files that have no published SHA-256 (trust on first use: the
            hash of the download is recorded and enforced afterwards). Off by default: such files
            are refused with :class:`WeightsUnverifiedError`. Every built-in file has a hash; this
            only concerns plug-in files declared with ``sha256=None``.
    """

    def __init__(
        self,
        cache_dir: str | os.PathLike[str] | None = None,
        *,
        registry: WeightRegistry | None = None,
        hf_endpoint: str | None = None,
        hf_token: str | bool | None = None,
        retries: int = 3,
        backoff: float = 1.0,
        timeout: float = 30.0,
        session: Any = None,
        sleep: Callable[[float], None] | None = None,
        trust_unverified: bool = False,
    ):
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else default_weights_dir()
        self._registry = registry
        self.hf_endpoint = hf_endpoint
        self.hf_token = hf_token
        self.retries, self.backoff, self.timeout = retries, backoff, timeout
        self.session = session
        self._sleep = sleep
        self.trust_unverified = trust_unverified
        self.checksums = ChecksumStore(self.cache_dir / CHECKSUMS_FILE)

    # ------------------------------------------------------------------ lookup

    @property
    def registry(self) -> WeightRegistry:
        """The registry (built on first use)."""
        if self._registry is None:
            self._registry = build_registry()
        return self._registry

    def _file(self, item: str | WeightFile) -> WeightFile:
        return item if isinstance(item, WeightFile) else self.registry.get(item)

    def _files(self, selectors: str | WeightFile | Iterable[str | WeightFile]) -> list[WeightFile]:
        if isinstance(selectors, (str, WeightFile)):
            selectors = [selectors]
        out: dict[str, WeightFile] = {}
        for sel in selectors:
            for wf in [sel] if isinstance(sel, WeightFile) else self.registry.resolve(sel):
                out.setdefault(wf.name, wf)
        return list(out.values())

    def path(self, item: str | WeightFile) -> Path:
        """Where the file is, or should be placed: ``<cache_dir>/<group>/<filename>``."""
        wf = self._file(item)
        return self.cache_dir / wf.group / wf.filename

    def expected_sha256(self, item: str | WeightFile) -> str | None:
        """The published SHA-256, else the one recorded on a trusted first download, else None."""
        wf = self._file(item)
        return wf.sha256 or self.checksums.get(wf.name).get("sha256")

    def resolve(
        self,
        item: str | WeightFile,
        explicit: str | os.PathLike[str] | None = None,
        *,
        download: bool = False,
        progress: FileProgress | None = None,
    ) -> Path:
        """The path of one file a backend loads: the one way weights are found.

        Args:
            item: The file (an entry of the backend's ``weights``, or its name).
            explicit: A path the user gave instead of the cache (a backend option such as
                ``weights_path``); used as it is when it exists.
            download: Fetch the file into the cache when it is missing.
            progress: Download progress, as for :meth:`download`.

        Raises:
            WeightsMissingError: the file is not there (or is damaged); the message names the
                file, where to put it, where to fetch it and the ``talkinghead weights download``
                command.
        """
        wf = self._file(item)
        if explicit is not None:
            path = Path(explicit).expanduser()
            if path.is_file():
                return path
            raise missing_file_error(wf, path)
        return self.require(wf, download=download, progress=progress)[wf.name]

    # ------------------------------------------------------------------ checking

    def status(self, item: str | WeightFile, *, deep: bool = True) -> FileStatus:
        """Check one file.

        Args:
            item: A file name or entry.
            deep: Recompute the SHA-256. If False, a file whose size and modification time match
                the last full verification is trusted without rehashing.
        """
        wf = self._file(item)
        path = self.path(wf)
        if not path.is_file():
            part = path.with_name(path.name + ".part")
            detail = f"partial download: {part.stat().st_size} bytes" if part.is_file() else "not downloaded"
            return FileStatus(wf, path, MISSING, detail)
        st = path.stat()
        if wf.size is not None and st.st_size != wf.size:
            return FileStatus(wf, path, CORRUPT, f"size {st.st_size} bytes, expected {wf.size}")
        entry = self.checksums.get(wf.name)
        expected = wf.sha256 or entry.get("sha256")
        stamp_ok = entry.get("verified") == [st.st_size, st.st_mtime_ns] and entry.get("sha256") == expected
        if not deep and expected and stamp_ok:
            return FileStatus(wf, path, OK, "verified earlier")
        actual = sha256_file(path)
        if expected and actual != expected:
            return FileStatus(wf, path, CORRUPT, f"sha256 {actual}, expected {expected}", actual)
        self.checksums.update(wf.name, sha256=actual, size=st.st_size, verified=[st.st_size, st.st_mtime_ns])
        detail = "sha256 matches" if expected else "no published hash; placed by hand, sha256 recorded now"
        return FileStatus(wf, path, OK, detail, actual)

    def verify(self, selectors: str | Iterable[str] = "all") -> list[FileStatus]:
        """Recompute the SHA-256 (or check the size where no hash is known) of each file."""
        return [self.status(wf, deep=True) for wf in self._files(selectors)]

    # ------------------------------------------------------------------ getting

    def download(
        self,
        selectors: str | WeightFile | Iterable[str | WeightFile] = "all",
        *,
        force: bool = False,
        progress: FileProgress | None = None,
    ) -> dict[str, Path]:
        """Download what is missing (or corrupt) and verify it.

        Each file is fetched into ``<path>.part`` (resumed if present) from its mirrors in order,
        checked (size, SHA-256), then renamed into place. A file whose mirrors all fail is
        reported at the end; the others are still downloaded. A file with no known SHA-256 is
        not downloaded unless the manager trusts unverified files (``trust_unverified``).

        Args:
            selectors: File, group or bundle names (or entries), or ``"all"``.
            force: Download again even if a verified file is present.
            progress: Called with (file, bytes_done, bytes_total) during transfers.

        Returns:
            File name -> path, for every selected file.

        Raises:
            WeightsChecksumError: a file arrived corrupt from every mirror that delivered it.
            WeightsUnverifiedError: a file has no published hash and trust on first use was not
                accepted (the message names the flag that accepts it).
            WeightsMissingError: some files could not be fetched; the message says which files
                to place where and the URLs to fetch them from on another machine.
        """
        files = self._files(selectors)
        failures: dict[str, list[str]] = {}
        bad_checksum = False
        unverified: list[WeightFile] = []
        unreachable: set[str] = set()
        for wf in files:
            if not force:
                st = self.status(wf, deep=False)
                if st.ok:
                    continue
                if st.state == CORRUPT:
                    log.warning("%s is corrupt (%s); downloading it again", st.path, st.detail)
            if self.expected_sha256(wf) is None and not self.trust_unverified:
                unverified.append(wf)
                failures[wf.name] = [
                    f"not downloaded: no published SHA-256, so the download could not be verified; accept trust "
                    f"on first use with `talkinghead weights download {TRUST_FLAG} {wf.name}`"
                ]
                continue
            errors, corrupt = self._fetch(wf, progress, unreachable)
            if errors:
                failures[wf.name] = errors
                bad_checksum = bad_checksum or corrupt
        if failures:
            failed = [wf for wf in files if wf.name in failures]
            msg = self.missing_message(failed, failures)
            if bad_checksum:
                cls: type[WeightsMissingError] = WeightsChecksumError
            elif len(unverified) == len(failed):
                cls = WeightsUnverifiedError
            else:
                cls = WeightsMissingError
            raise cls(msg, [str(self.path(f)) for f in failed])
        return {wf.name: self.path(wf) for wf in files}

    def require(
        self,
        selectors: str | WeightFile | Iterable[str | WeightFile],
        *,
        download: bool = False,
        progress: FileProgress | None = None,
    ) -> dict[str, Path]:
        """The paths of files a backend needs, checking that they are present and intact.

        Files verified before (same size and mtime) are not rehashed.

        Args:
            selectors: File, group or bundle names, or entries (e.g. the backend's ``weights``).
            download: Fetch missing files instead of failing.
            progress: Download progress, as for :meth:`download`.

        Raises:
            WeightsMissingError: files are missing or corrupt (and ``download`` is False or failed).
        """
        files = self._files(selectors)
        bad = [st for st in (self.status(wf, deep=False) for wf in files) if not st.ok]
        if bad and download:
            self.download([st.file for st in bad], force=True, progress=progress)
            bad = [st for st in (self.status(st.file, deep=False) for st in bad) if not st.ok]
        if bad:
            reasons = {st.file.name: [f"{st.state}: {st.detail}"] for st in bad}
            cls = WeightsChecksumError if any(st.state == CORRUPT for st in bad) else WeightsMissingError
            raise cls(self.missing_message([st.file for st in bad], reasons), [str(st.path) for st in bad])
        return {wf.name: self.path(wf) for wf in files}

    def _fetch(self, wf: WeightFile, progress: FileProgress | None, unreachable: set[str]) -> tuple[list[str], bool]:
        """Try each mirror; return the errors (empty on success) and whether a mirror delivered a
        corrupt file."""
        final = self.path(wf)
        part = final.with_name(final.name + ".part")
        final.parent.mkdir(parents=True, exist_ok=True)
        errors: list[str] = []
        corrupt = False
        cb = (lambda done, total: progress(wf, done, total)) if progress is not None else None
        for url in wf.urls:
            host = self._host(url)
            if host in unreachable:
                errors.append(f"{url}: skipped, {host} was unreachable")
                continue
            try:
                if url.startswith("hf://"):
                    staging = self.cache_dir / ".hf" / wf.group
                    got = hf_download(
                        url, staging, endpoint=self.hf_endpoint, token=self.hf_token, progress=cb, timeout=self.timeout
                    )
                    os.replace(got, part)
                    shutil.rmtree(staging, ignore_errors=True)
                else:
                    kwargs: dict[str, Any] = {}
                    if self._sleep is not None:
                        kwargs["sleep"] = self._sleep
                    http_download(
                        url,
                        part,
                        expected_size=wf.size,
                        progress=cb,
                        session=self.session,
                        retries=self.retries,
                        backoff=self.backoff,
                        timeout=self.timeout,
                        **kwargs,
                    )
            except DownloadError as exc:
                log.warning("could not download %s: %s", wf.name, exc)
                errors.append(str(exc))
                if exc.unreachable:
                    unreachable.add(host)
                continue
            problem, sha = self._check_part(wf, part)
            if problem:
                corrupt = True
                part.unlink(missing_ok=True)
                log.warning("%s from %s: %s; file deleted", wf.name, url, problem)
                errors.append(f"{url}: {problem}")
                continue
            os.replace(part, final)
            st = final.stat()
            fields: dict[str, Any] = {"sha256": sha, "size": st.st_size, "verified": [st.st_size, st.st_mtime_ns],
                                      "source": url}
            if self.expected_sha256(wf) is None:
                fields["trusted_on_first_use"] = True
                log.warning("%s has no published SHA-256; trusting this download and recording %s", wf.name, sha)
            self.checksums.update(wf.name, **fields)
            log.info("downloaded %s to %s", wf.name, final)
            return [], False
        return errors, corrupt

    def _check_part(self, wf: WeightFile, part: Path) -> tuple[str | None, str | None]:
        """(problem or None, sha256 computed or None)."""
        size = part.stat().st_size
        if wf.size is not None and size != wf.size:
            return f"size {size} bytes, expected {wf.size}", None
        actual = sha256_file(part)
        expected = self.expected_sha256(wf)
        if expected and actual != expected:
            return f"sha256 mismatch: got {actual}, expected {expected}", actual
        return None, actual

    def _host(self, url: str) -> str:
        return host_of(human_url(url, self.hf_endpoint))

    # ------------------------------------------------------------------ messages

    def missing_message(self, files: Iterable[WeightFile], reasons: dict[str, list[str]] | None = None) -> str:
        """The text of a :class:`WeightsMissingError`: each file, the full path to place it at,
        the URLs to fetch it from elsewhere, its size and hash, and the commands to run."""
        files = list(files)
        reasons = reasons or {}
        names = " ".join(f.name for f in files)
        opt = "" if self.cache_dir == default_weights_dir() else f" --cache-dir {self.cache_dir}"
        lines = [
            f"{len(files)} weight file(s) are missing or damaged in {self.cache_dir}.",
            f"Download them with:  talkinghead weights download{opt} {names}",
            "Offline? Fetch them on another machine and place each file at the path shown:",
        ]
        for wf in files:
            lines.append(f"  {self.path(wf)}" + (f"  ({wf.description})" if wf.description else ""))
            lines.extend(_fetch_lines(wf, self.expected_sha256(wf), self.hf_endpoint))
            for reason in reasons.get(wf.name, []):
                lines.append(f"      failed: {reason}")
        lines.append(f"Then check them with:  talkinghead weights verify{opt} {names}")
        return "\n".join(lines)


def _fetch_lines(wf: WeightFile, sha: str | None, hf_endpoint: str | None = None) -> list[str]:
    lines = [f"      {'from' if i == 0 else '  or'} {human_url(url, hf_endpoint)}" for i, url in enumerate(wf.urls)]
    facts = ([f"{wf.size} bytes"] if wf.size is not None else []) + ([f"sha256 {sha}"] if sha else [])
    if facts:
        lines.append("      " + ", ".join(facts))
    return lines


def missing_file_error(item: WeightFile, path: str | os.PathLike[str]) -> WeightsMissingError:
    """The error for a weight file given by an explicit path that does not exist.

    It names the file, the path, the command that puts the file in the weights cache, and the URLs
    to fetch it from by hand.
    """
    p = Path(path)
    what = f" ({item.description})" if item.description else ""
    lines = [
        f"weight file {item.filename}{what} not found at {p}.",
        f"Download it into the weights cache with:  talkinghead weights download {item.name}",
        f"(and stop passing {p}), or fetch it and place it at {p}:",
        *_fetch_lines(item, item.sha256),
    ]
    return WeightsMissingError("\n".join(lines), [str(p)])


def resolve(
    item: str | WeightFile,
    explicit: str | os.PathLike[str] | None = None,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    download: bool = False,
) -> Path:
    """The path of one weight file: ``explicit`` if given, else the verified copy in the cache.

    The one way backends find their weights (``WeightsManager(cache_dir).resolve(...)``).

    >>> resolve(catalog.entry("gfpgan-v1.4"))                  # doctest: +SKIP
    PosixPath('/home/me/.cache/talkinghead/weights/gfpgan/GFPGANv1.4.pth')

    Raises:
        WeightsMissingError: the file is not there; the message names the download command.
    """
    return WeightsManager(cache_dir).resolve(item, explicit, download=download)
