"""Loaded models and per-portrait preprocessing, kept once per process.

An app owns a :class:`ModelCache` (or uses :func:`default_cache`, one per process). Backends are
keyed by stage, name and configuration, created and loaded once, and shared by every
:class:`~talkinghead.Avatar` that uses the cache. Everything is keyed by content (configuration,
pixel hashes), never by ``id()``, and computed once per key even when many threads ask at once:
the first caller computes under that key's own lock, the others wait for its result.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
import weakref
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
        self._keys: dict[int, str] = {}  # id of a backend held in _backends -> its content key
        self._tokens: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()
        self._loaded: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()
        self._loaded_strong: list[Any] = []  # backends that cannot be weakly referenced
        self._prepared: OrderedDict[tuple, Any] = OrderedDict()
        self._key_locks: dict[tuple, threading.Lock] = {}
        self._components: dict[tuple, Any] = {}
        self.max_portraits = max_portraits

    def backend(self, stage: str, name: str, config: Mapping[str, Any] | None = None) -> Any:
        """The backend instance for (stage, name, config), created on first use (not loaded)."""
        key = (stage, name, _config_key(config or {}))
        with self._lock:
            if key not in self._backends:
                backend = get_registry().create(stage, name, config or {})
                self._backends[key] = backend
                self._keys[id(backend)] = ":".join(key)  # safe: _backends keeps the object alive
            return self._backends[key]

    def backend_key(self, backend: Any) -> str:
        """A content key for ``backend``: stage, name and configuration for the backends this cache made;
        a token of the instance's own (never reused, unlike ``id()``) for instances given by the app."""
        with self._lock:
            key = self._keys.get(id(backend))
            if key is not None and any(b is backend for b in self._backends.values()):
                return key
            try:
                token = self._tokens.get(backend)
                if token is None:
                    token = f"instance:{type(backend).__qualname__}:{uuid.uuid4().hex}"
                    self._tokens[backend] = token
                return token
            except TypeError:  # not weakly referenceable: keep it alive so its id is never reused
                if not any(b is backend for b in self._loaded_strong):
                    self._loaded_strong.append(backend)
                return f"instance:{type(backend).__qualname__}:{id(backend)}"

    def _is_loaded(self, backend: Any) -> bool:
        try:
            return bool(self._loaded.get(backend))
        except TypeError:
            return any(b is backend for b in self._loaded_strong)

    def _mark_loaded(self, backend: Any) -> None:
        try:
            self._loaded[backend] = True
        except TypeError:
            if not any(b is backend for b in self._loaded_strong):
                self._loaded_strong.append(backend)

    def _key_lock(self, key: tuple) -> threading.Lock:
        with self._lock:
            lock = self._key_locks.get(key)
            if lock is None:
                lock = self._key_locks[key] = threading.Lock()
            return lock

    def ensure_loaded(self, backend: Any) -> Any:
        """Call ``backend.load()`` once per backend instance, also under concurrent first use; returns it."""
        with self._lock:
            if self._is_loaded(backend):
                return backend
        key = ("load", self.backend_key(backend))
        with self._key_lock(key):
            with self._lock:
                if self._is_loaded(backend):
                    return backend
            t0 = time.perf_counter()
            backend.load()
            with self._lock:
                self._mark_loaded(backend)
            log.info("loaded %s backend %r in %.2f s", backend.stage, backend.name, time.perf_counter() - t0)
            return backend

    def prepared(self, key: tuple, compute: Callable[[], Any]) -> Any:
        """Per-portrait preprocessing, computed once per key (even under concurrent first use) and kept (LRU).

        ``key`` must identify the content: the animator's :meth:`backend_key`, the portrait's pixel hash
        and the options that change the result.
        """
        with self._lock:
            if key in self._prepared:
                self._prepared.move_to_end(key)
                return self._prepared[key]
        lock = self._key_lock(("prepared",) + tuple(key))
        with lock:
            with self._lock:
                if key in self._prepared:
                    self._prepared.move_to_end(key)
                    return self._prepared[key]
            value = compute()
            with self._lock:
                self._prepared[key] = value
                while len(self._prepared) > self.max_portraits:
                    self._prepared.popitem(last=False)
                self._key_locks.pop(("prepared",) + tuple(key), None)
            return value

    def component(self, key: tuple, factory: Callable[[], Any]) -> Any:
        """A shared helper model that is not a stage backend (e.g. the face finder), made once per key."""
        with self._lock:
            if key in self._components:
                return self._components[key]
        with self._key_lock(("component",) + tuple(key)):
            with self._lock:
                if key in self._components:
                    return self._components[key]
            value = factory()
            with self._lock:
                self._components[key] = value
            return value

    def is_loaded(self, backend: Any) -> bool:
        """Whether :meth:`ensure_loaded` has loaded ``backend`` already (a live turn reports cold/warm)."""
        with self._lock:
            return self._is_loaded(backend)

    def clear(self) -> None:
        """Close every backend and helper model and forget all cached state."""
        with self._lock:
            loaded = [b for b in self._backends.values() if self._is_loaded(b)]
            for obj in loaded + list(self._components.values()):
                try:
                    if hasattr(obj, "close"):
                        obj.close()
                except Exception as exc:  # closing must not mask the caller's work
                    log.warning("closing %r failed: %s", obj, exc)
            self._backends.clear()
            self._keys.clear()
            self._loaded = weakref.WeakKeyDictionary()
            self._loaded_strong.clear()
            self._prepared.clear()
            self._components.clear()


_default: ModelCache | None = None
_default_lock = threading.Lock()


def default_cache() -> ModelCache:
    """The process-wide cache used by Avatars that are not given one."""
    global _default
    with _default_lock:
        if _default is None:
            _default = ModelCache()
        return _default
