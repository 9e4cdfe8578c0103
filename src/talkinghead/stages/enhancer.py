"""Enhancer stage: face restoration on rendered frames."""

from __future__ import annotations

from typing import ClassVar, Protocol, runtime_checkable

from ..values import FrameChunk


@runtime_checkable
class Enhancer(Protocol):
    """Improves frames (e.g. restores the face). Must return as many frames as it is given."""

    stage: ClassVar[str]
    name: ClassVar[str]
    capabilities: ClassVar[frozenset[str]]

    def load(self) -> None: ...

    def close(self) -> None: ...

    def enhance(self, chunk: FrameChunk) -> FrameChunk:
        """Return the enhanced chunk (same ``start`` and frame count)."""
        ...
