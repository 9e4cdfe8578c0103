"""Enhancer stage: face restoration on rendered frames."""

from __future__ import annotations

from typing import ClassVar, Protocol, runtime_checkable

from ..values import FrameChunk


@runtime_checkable
class Enhancer(Protocol):
    """Improves frames (e.g. restores the face). Must return as many frames as it is given.

    An enhancer is shared by every video that uses it, so it must keep no per-video state of its own.
    One that needs some (face tracking across chunks, caches) also implements ``new_state()``: the
    :class:`~talkinghead.Avatar` then makes one state per video and passes it as ``enhance(chunk,
    state=...)`` with every chunk of that video.
    """

    stage: ClassVar[str]
    name: ClassVar[str]
    capabilities: ClassVar[frozenset[str]]

    def load(self) -> None: ...

    def close(self) -> None: ...

    def enhance(self, chunk: FrameChunk) -> FrameChunk:
        """Return the enhanced chunk (same ``start`` and frame count)."""
        ...
