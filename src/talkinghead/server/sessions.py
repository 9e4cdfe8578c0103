"""Live objects the server keeps between requests: one registry, bounded, with idle expiry.

A *session* is anything a client keeps talking to — a REST conversation's warm
:class:`~talkinghead.Avatar`, a live WebRTC or WebSocket session (in a registry of their own, where
:meth:`SessionRegistry.add` refuses a session past the bound instead of dropping another). Sessions are looked
up by key, dropped when idle for ``max_idle`` seconds or when the registry is full (least recently
used first), and closed when the server stops. Durable state (a conversation's history) lives in
the :class:`~talkinghead.server.store.Store`, so a dropped session can always be rebuilt.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Protocol, TypeVar, runtime_checkable

log = logging.getLogger(__name__)

__all__ = ["Session", "SessionRegistry"]

S = TypeVar("S", bound="Session")


@runtime_checkable
class Session(Protocol):
    """What the registry needs of a session."""

    def close(self) -> None:
        """Release what the session holds (called once, from any thread)."""


class SessionRegistry:
    """Sessions by key: at most ``max_sessions``, each dropped after ``max_idle`` seconds unused.

    Thread-safe. ``get_or_create`` builds a session outside the lock, so a slow factory never
    blocks lookups of other sessions.
    """

    def __init__(self, max_sessions: int, max_idle: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_sessions, self.max_idle, self.clock = max_sessions, max_idle, clock
        self._lock = threading.Lock()
        self._items: OrderedDict[str, tuple[Any, float]] = OrderedDict()

    def get(self, key: str) -> Any | None:
        """The session under ``key`` (marking it used), or None."""
        with self._lock:
            item = self._items.pop(key, None)
            if item is None:
                return None
            self._items[key] = (item[0], self.clock())
            return item[0]

    def peek(self, key: str) -> Any | None:
        """The session under ``key`` without marking it used (for listings), or None."""
        with self._lock:
            item = self._items.get(key)
            return item[0] if item is not None else None

    def get_or_create(self, key: str, factory: Callable[[], S], *, valid: Callable[[S], bool] | None = None) -> S:
        """The session under ``key``; built with ``factory`` when missing or when ``valid`` rejects it."""
        session = self.get(key)
        if session is not None and (valid is None or valid(session)):
            return session
        if session is not None:
            self.drop(key)
        new = factory()
        evicted: list[Any] = []
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                evicted.append(old[0])
            self._items[key] = (new, self.clock())
            while len(self._items) > self.max_sessions:
                _, (victim, _) = self._items.popitem(last=False)
                evicted.append(victim)
        for victim in evicted:
            _close(victim)
        return new

    def add(self, key: str, session: Any) -> bool:
        """Register ``session`` under a new ``key`` unless the registry is full; nothing is evicted.

        Returns False (and registers nothing) when ``max_sessions`` are registered or ``key`` is taken:
        for sessions that must not be dropped to make room, such as live ones.
        """
        with self._lock:
            if key in self._items or len(self._items) >= self.max_sessions:
                return False
            self._items[key] = (session, self.clock())
            return True

    def forget(self, key: str, session: Any) -> bool:
        """Remove ``session`` from under ``key`` without closing it (it closed itself)."""
        with self._lock:
            item = self._items.get(key)
            if item is None or item[0] is not session:
                return False
            del self._items[key]
            return True

    def put(self, key: str, session: Any) -> None:
        """Register ``session`` under ``key`` (closing one it replaces)."""
        self.get_or_create(key, lambda: session, valid=lambda s: s is session)

    def drop(self, key: str) -> bool:
        """Close and forget the session under ``key``."""
        with self._lock:
            item = self._items.pop(key, None)
        if item is None:
            return False
        _close(item[0])
        return True

    def expire(self) -> int:
        """Close sessions idle for longer than ``max_idle``; returns how many."""
        cutoff = self.clock() - self.max_idle
        with self._lock:
            old = [k for k, (_, used) in self._items.items() if used < cutoff]
            victims = [self._items.pop(k)[0] for k in old]
        for victim in victims:
            _close(victim)
        return len(victims)

    def close_all(self) -> None:
        """Close every session (server shutdown)."""
        with self._lock:
            victims = [s for s, _ in self._items.values()]
            self._items.clear()
        for victim in victims:
            _close(victim)

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def keys(self) -> list[str]:
        with self._lock:
            return list(self._items)


def _close(session: Any) -> None:
    try:
        session.close()
    except Exception as exc:  # one session's failure to close must not stop the others
        log.warning("closing session %r failed: %s", session, exc)
