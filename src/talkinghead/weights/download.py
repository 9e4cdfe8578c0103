"""Fetching one URL into a ``.part`` file: HTTP(S) with range resume, or the Hugging Face Hub.

HTTP uses ``requests`` (streamed, ``Range: bytes=N-`` to resume, retries with exponential back-off
on transient failures). ``hf://`` URLs use ``huggingface_hub.hf_hub_download`` with an explicit
``endpoint`` (never via environment variables), which resumes on its own. Both are optional
dependencies (extra ``weights``) imported only when a download starts.
"""

from __future__ import annotations

import inspect
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..errors import ConfigError, MissingDependencyError, TalkingHeadError

log = logging.getLogger(__name__)

#: ``progress(bytes_done, bytes_total)``; total is None when the server does not say.
ByteProgress = Callable[[int, "int | None"], None]

HF_DEFAULT_ENDPOINT = "https://huggingface.co"
_TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
_CHUNK = 1 << 16  # small enough that a cut connection loses little


class DownloadError(TalkingHeadError):
    """One URL could not be fetched. ``transient`` says whether retrying later may help;
    ``unreachable`` that no connection to the host could be made at all (offline)."""

    def __init__(self, url: str, message: str, *, transient: bool = False, unreachable: bool = False):
        self.url, self.transient, self.unreachable = url, transient, unreachable
        super().__init__(f"{url}: {message}")


@dataclass(frozen=True)
class HfRef:
    """A parsed ``hf://[spaces/|datasets/]owner/repo[@revision]/path`` URL."""

    repo_id: str
    path: str
    revision: str = "main"
    repo_type: str = "model"

    def browser_url(self, endpoint: str | None = None) -> str:
        """The plain https URL of the file (for humans fetching it by hand)."""
        base = (endpoint or HF_DEFAULT_ENDPOINT).rstrip("/")
        prefix = {"model": "", "space": "spaces/", "dataset": "datasets/"}[self.repo_type]
        return f"{base}/{prefix}{self.repo_id}/resolve/{self.revision}/{self.path}"


_HF_RE = re.compile(
    r"^hf://(?:(?P<type>spaces|datasets|models)/)?(?P<repo>[^/@]+/[^/@]+)(?:@(?P<rev>[^/]+))?/(?P<path>.+)$"
)


def parse_hf_url(url: str) -> HfRef:
    """Parse an ``hf://`` URL (the same form as ``huggingface_hub.HfFileSystem`` paths).

    Raises:
        ConfigError: the URL is not of that form.
    """
    m = _HF_RE.match(url)
    if not m or m.group("path").startswith("/") or ".." in m.group("path").split("/"):
        raise ConfigError(f"bad Hugging Face URL {url!r}; expected hf://[spaces/|datasets/]owner/repo[@revision]/path")
    repo_type = {None: "model", "models": "model", "spaces": "space", "datasets": "dataset"}[m.group("type")]
    return HfRef(m.group("repo"), m.group("path"), m.group("rev") or "main", repo_type)


def human_url(url: str, hf_endpoint: str | None = None) -> str:
    """``url`` as something a browser or ``curl`` can fetch."""
    return parse_hf_url(url).browser_url(hf_endpoint) if url.startswith("hf://") else url


def host_of(url: str) -> str:
    """The host a URL connects to (``hf://`` URLs: the Hub endpoint's host)."""
    return urlsplit(url).netloc


# --------------------------------------------------------------------------------------- HTTP


def _requests():
    try:
        import requests
    except ImportError as exc:  # pragma: no cover - requests is almost always there
        raise MissingDependencyError("requests", "weights", "downloading weights") from exc
    return requests


def _content_range(value: str | None) -> tuple[int | None, int | None]:
    """(start, total) from ``Content-Range: bytes start-end/total`` (None where absent or ``*``)."""
    m = re.match(r"bytes\s+(\d+)-\d+/(\d+|\*)", value or "")
    if not m:
        m2 = re.match(r"bytes\s+\*/(\d+)", value or "")
        return (None, int(m2.group(1))) if m2 else (None, None)
    return int(m.group(1)), (None if m.group(2) == "*" else int(m.group(2)))


def http_download(
    url: str,
    part: Path,
    *,
    expected_size: int | None = None,
    progress: ByteProgress | None = None,
    session: Any = None,
    retries: int = 3,
    backoff: float = 1.0,
    timeout: float = 30.0,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Download ``url`` into ``part``, resuming from the bytes already there.

    A ``.part`` that already holds ``expected_size`` bytes is left as it is. The server may
    answer a range request with 206 (the rest is appended) or 200 (the file restarts).

    Args:
        url: An ``http(s)://`` URL.
        part: The partial file to create or extend.
        expected_size: Size the file must have, if known; a server announcing another size is
            treated as a wrong file (permanent error).
        progress: Called with (bytes_done, bytes_total) after each chunk.
        session: A ``requests.Session`` to use (one is made if None).
        retries: How many times to retry after a transient failure (cut connection, timeout,
            5xx, 429). A host refusing the very first connection is not retried: that is
            reported at once as unreachable.
        backoff: First back-off delay in seconds; doubles after each retry.
        timeout: Connect and read timeout in seconds.
        sleep: Sleep function (tests pass a no-op).

    Raises:
        DownloadError: the URL failed (``transient``/``unreachable`` say how).
    """
    requests = _requests()
    own = session is None
    session = session or requests.Session()
    part.parent.mkdir(parents=True, exist_ok=True)
    connected = False
    last: DownloadError | None = None
    try:
        for attempt in range(retries + 1):
            if attempt:
                delay = backoff * 2 ** (attempt - 1)
                log.info("retrying %s in %.1f s (%s)", url, delay, last)
                sleep(delay)
            try:
                _http_attempt(requests, session, url, part, expected_size, progress, timeout)
                return
            except requests.exceptions.ConnectionError as exc:
                if not connected and not part.exists() and _is_connect_failure(requests, exc):
                    msg = f"cannot connect ({_short(exc)})"
                    raise DownloadError(url, msg, transient=True, unreachable=True) from exc
                last = DownloadError(url, f"connection lost ({_short(exc)})", transient=True)
            except requests.exceptions.ChunkedEncodingError as exc:
                last = DownloadError(url, f"connection lost ({_short(exc)})", transient=True)
            except requests.exceptions.Timeout as exc:
                last = DownloadError(url, f"timed out ({_short(exc)})", transient=True)
            except requests.exceptions.RequestException as exc:
                raise DownloadError(url, _short(exc)) from exc
            except DownloadError as exc:
                if not exc.transient:
                    raise
                last = exc
            connected = connected or part.exists()
        assert last is not None
        raise last
    finally:
        if own:
            session.close()


def _is_connect_failure(requests: Any, exc: Exception) -> bool:
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    text = repr(exc)
    return any(s in text for s in (
        "NewConnectionError", "NameResolutionError", "Connection refused", "Failed to resolve", "Network is unreachable"
    ))


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) < 200 else text[:197] + "..."


def _http_attempt(requests, session, url, part, expected_size, progress, timeout) -> None:
    have = part.stat().st_size if part.exists() else 0
    if expected_size is not None and have > expected_size:
        part.unlink()
        have = 0
    if expected_size is not None and have == expected_size and have > 0:
        return
    headers = {"Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
    with session.get(url, headers=headers, stream=True, timeout=timeout, allow_redirects=True) as r:
        if r.status_code == 416 and have:
            _, total = _content_range(r.headers.get("Content-Range"))
            if total == have and (expected_size is None or expected_size == have):
                return
            part.unlink()
            raise DownloadError(url, "server refused to resume; restarting", transient=True)
        if r.status_code in _TRANSIENT_STATUS:
            raise DownloadError(url, f"HTTP {r.status_code} {r.reason}", transient=True)
        if r.status_code >= 400:
            raise DownloadError(url, f"HTTP {r.status_code} {r.reason}")
        if r.status_code == 206:
            start, total = _content_range(r.headers.get("Content-Range"))
            if start != have:
                part.unlink(missing_ok=True)
                raise DownloadError(url, f"server resumed at byte {start}, not {have}; restarting", transient=True)
            mode = "ab"
        else:
            if have:
                log.info("%s does not support resuming; downloading from the start", url)
            have = 0
            length = r.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            mode = "wb"
        if expected_size is not None and total is not None and total != expected_size:
            raise DownloadError(url, f"server offers {total} bytes but the file has {expected_size}; wrong file?")
        done = have
        if progress is not None:
            progress(done, total)
        with open(part, mode) as f:
            for chunk in r.iter_content(_CHUNK):
                if chunk:
                    f.write(chunk)
                    done += len(chunk)
                    if progress is not None:
                        progress(done, total)
        if total is not None and done < total:
            raise DownloadError(url, f"transfer ended after {done} of {total} bytes", transient=True)


# ------------------------------------------------------------------------------ Hugging Face


def _progress_bar_class(progress: ByteProgress | None):
    """A minimal tqdm stand-in that huggingface_hub accepts as ``tqdm_class`` and that forwards
    byte counts to ``progress``."""

    class _Bar:
        def __init__(self, *args: Any, total: int | None = None, initial: int = 0, **kwargs: Any):
            self.total, self.n, self.initial = total, initial, initial
            self.disable = False
            if progress is not None:
                progress(self.n, self.total)

        def update(self, n: int = 1) -> None:
            self.n += n or 0
            if progress is not None:
                progress(self.n, self.total)

        def close(self) -> None:
            return None

        def refresh(self, *args: Any, **kwargs: Any) -> None:
            return None

        def set_description(self, *args: Any, **kwargs: Any) -> None:
            return None

        def set_postfix(self, *args: Any, **kwargs: Any) -> None:
            return None

        def reset(self, total: int | None = None) -> None:
            self.n = 0
            if total is not None:
                self.total = total

        def __enter__(self):
            return self

        def __exit__(self, *exc: Any) -> None:
            return None

    return _Bar


def hf_download(
    url: str,
    staging_dir: Path,
    *,
    endpoint: str | None = None,
    token: str | bool | None = None,
    progress: ByteProgress | None = None,
    timeout: float = 30.0,
) -> Path:
    """Download an ``hf://`` URL with ``huggingface_hub`` into ``staging_dir``.

    huggingface_hub keeps its own resumable ``.incomplete`` file under ``staging_dir``; the caller
    moves the returned file into place after verifying it.

    Args:
        url: ``hf://[spaces/|datasets/]owner/repo[@revision]/path``.
        staging_dir: Folder passed as ``local_dir``.
        endpoint: Hub endpoint (default ``https://huggingface.co``), passed explicitly.
        token: Hub token (None: huggingface_hub's default lookup).
        progress: Called with (bytes_done, bytes_total).
        timeout: Metadata request timeout in seconds.

    Raises:
        DownloadError: the Hub could not deliver the file.
        MissingDependencyError: huggingface_hub is not installed.
    """
    ref = parse_hf_url(url)
    try:
        import huggingface_hub
    except ImportError as exc:
        raise MissingDependencyError("huggingface_hub", "weights", "downloading from the Hugging Face Hub") from exc
    kwargs: dict[str, Any] = dict(
        repo_id=ref.repo_id,
        filename=ref.path,
        repo_type=ref.repo_type,
        revision=ref.revision,
        local_dir=str(staging_dir),
        endpoint=endpoint or HF_DEFAULT_ENDPOINT,
        token=token,
    )
    params = inspect.signature(huggingface_hub.hf_hub_download).parameters
    if "tqdm_class" in params:
        kwargs["tqdm_class"] = _progress_bar_class(progress)
    if "etag_timeout" in params:
        kwargs["etag_timeout"] = timeout
    _probe(kwargs["endpoint"], url, timeout)
    staging_dir.mkdir(parents=True, exist_ok=True)
    try:
        return Path(huggingface_hub.hf_hub_download(**kwargs))
    except Exception as exc:  # any Hub failure means: try the next mirror
        name = type(exc).__name__
        text = _short(exc)
        unreachable = "LocalEntryNotFound" in name or "connect" in text.lower() or "ConnectError" in repr(exc)
        raise DownloadError(url, f"{name}: {text}", transient=True, unreachable=unreachable) from exc


def _probe(endpoint: str, url: str, timeout: float) -> None:
    """Fail fast when the Hub's host cannot be reached at all (huggingface_hub would otherwise
    retry for about 20 s). Skipped when a proxy is configured, since only the proxy may connect."""
    import socket
    import urllib.request

    parts = urlsplit(endpoint)
    if not parts.hostname or urllib.request.getproxies().get(parts.scheme):
        return
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname, port), timeout=min(timeout, 10.0)).close()
    except OSError as exc:
        msg = f"cannot connect to {parts.hostname}:{port} ({exc})"
        raise DownloadError(url, msg, transient=True, unreachable=True) from exc
