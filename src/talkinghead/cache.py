"""Loaded models and per-portrait preprocessing, kept once per process.

An app owns a :class:`ModelCache` (or uses :func:`default_cache`, one per process). Backends are
keyed by stage, name and configuration, created and loaded once under a lock, and shared by every
:class:`~talkinghead.Avatar` that uses the cache.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from .plugins import get_registry

log = logging.getLogger(__name__)


def _config_key(config: Mapping[str, Any]) -> str:
    return json.dumps(config, sort_keys=True, default=repr)


class ModelCache:
    """Backends loaded once, and per-portrait preprocessing results.

    Args:
        max_portraits: how many prepared portraits to keep (least recently used are dropped).
    """

    def __init__(self, max_portraits: int = 16) -> None:
        self._lock = threading.RLock()
        self._backends: dict[tuple[str, str, str], Any] = {}
        self._loaded: set[int] = set()
        self._prepared: OrderedDict[tuple, Any] = OrderedDict()
        self._shared: dict[tuple, Any] = {}
        self.max_portraits = max_portraits

    def backend(self, stage: str, name: str, config: Mapping[str, Any] | None = None) -> Any:
        """The backend instance for (stage, name, config), created on first use (not loaded)."""
        key = (stage, name, _config_key(config or {}))
        with self._lock:
            if key not in self._backends:
                self._backends[key] = get_registry().create(stage, name, config or {})
            return self._backends[key]

    def ensure_loaded(self, backend: Any) -> Any:
        """Call ``backend.load()`` once per backend instance; returns the backend."""
        with self._lock:
            if id(backend) in self._loaded:
                return backend
            t0 = time.perf_counter()
            backend.load()
            self._loaded.add(id(backend))
            log.info("loaded %s backend %r in %.2f s", backend.stage, backend.name, time.perf_counter() - t0)
            return backend

    def prepared(self, key: tuple, compute: Callable[[], Any]) -> Any:
        """Per-portrait preprocessing, computed once per key and kept (LRU)."""
        with self._lock:
            if key in self._prepared:
                self._prepared.move_to_end(key)
                return self._prepared[key]
        value = compute()
        with self._lock:
            self._prepared[key] = value
            while len(self._prepared) > self.max_portraits:
                self._prepared.popitem(last=False)
        return value

    def is_loaded(self, backend: Any) -> bool:
        """Whether :meth:`ensure_loaded` has loaded ``backend`` already."""
        with self._lock:
            return id(backend) in self._loaded

    def shared(self, key: tuple, create: Callable[[], Any]) -> Any:
        """A stateless model that is not a stage backend (e.g. the voice-activity detector), created once."""
        with self._lock:
            if key not in self._shared:
                self._shared[key] = create()
            return self._shared[key]

    def clear(self) -> None:
        """Close every backend and forget all cached state."""
        with self._lock:
            for backend in self._backends.values():
                if id(backend) in self._loaded:
                    try:
                        backend.close()
                    except Exception as exc:  # closing must not mask the caller's work
                        log.warning("closing %r failed: %s", backend, exc)
            self._backends.clear()
            self._loaded.clear()
            self._prepared.clear()
            self._shared.clear()


_default: ModelCache | None = None
_default_lock = threading.Lock()


def default_cache() -> ModelCache:
    """The process-wide cache used by Avatars that are not given one."""
    global _default
    with _default_lock:
        if _default is None:
            _default = ModelCache()
        return _default
