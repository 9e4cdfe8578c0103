"""Where weights live on disk: the cache directory and its ``checksums.json``.

Layout of the weights directory::

    <weights dir>/
        checksums.json              hashes recorded on first verified download + verified stamps
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
import tempfile
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

CACHE_ENV = "TALKINGHEAD_CACHE"
CHECKSUMS_FILE = "checksums.json"
_CHUNK = 1 << 20


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
    """The cache's ``checksums.json``: per file name, the SHA-256 recorded on first verified
    download (for files whose upstream publishes none) and a stamp (size, mtime) of the last
    full verification so loading does not rehash hundreds of megabytes every time."""

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
