"""Deadlines: how long a conversational turn may take, known to every stage it calls.

:meth:`Avatar.ask <talkinghead.Avatar.ask>` runs a turn inside :func:`deadline`; the stages that wait
on something remote (the OpenAI-protocol LLM, ASR and TTS) ask :func:`attempt_timeout` how long one
request may take and :func:`remaining` whether another retry still fits, so a hanging server costs
a user at most the turn's deadline instead of ``timeout × (retries + 1)`` plus back-off.

The deadline lives in a :mod:`contextvars` variable: it belongs to the calling thread (or asyncio
task) and is never global state.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from .errors import ConfigError, DeadlineError

__all__ = ["attempt_timeout", "check", "deadline", "remaining"]

_end: ContextVar[tuple[float, float] | None] = ContextVar("talkinghead_deadline", default=None)


@contextmanager
def deadline(seconds: float | None) -> Iterator[None]:
    """Everything inside the block must finish within ``seconds`` (None: no deadline).

    Nested deadlines keep the earlier end.
    """
    if seconds is None:
        yield
        return
    if not seconds > 0:
        raise ConfigError(f"a deadline must be a positive number of seconds, got {seconds}")
    end = time.monotonic() + float(seconds)
    outer = _end.get()
    token = _end.set((end, float(seconds)) if outer is None or end < outer[0] else outer)
    try:
        yield
    finally:
        _end.reset(token)


def remaining() -> float | None:
    """Seconds left before the current deadline (negative once it passed), or None without one."""
    current = _end.get()
    return None if current is None else current[0] - time.monotonic()


def check(stage: str, backend: str) -> None:
    """Raise :class:`DeadlineError` if the current deadline has passed."""
    left = remaining()
    if left is not None and left <= 0:
        raise _error(stage, backend)


def attempt_timeout(timeout: float, stage: str = "", backend: str = "") -> float:
    """The time-out for one request: ``timeout``, or less when the deadline is nearer.

    Raises:
        DeadlineError: the deadline has already passed.
    """
    left = remaining()
    if left is None:
        return timeout
    if left <= 0:
        raise _error(stage, backend)
    return min(timeout, left)


def _error(stage: str, backend: str) -> DeadlineError:
    current = _end.get()
    total = f" of {current[1]:g} s" if current else ""
    return DeadlineError(
        stage or "turn", backend or "-", f"the turn's deadline{total} passed; the answer took too long. "
        "Try again, use a faster model or server, or raise the deadline (Avatar(turn_timeout=...))",
    )
