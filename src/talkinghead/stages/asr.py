"""Speech-recognition stage."""

from __future__ import annotations

from typing import ClassVar, Protocol, runtime_checkable

from ..values import Audio, Transcript


@runtime_checkable
class ASR(Protocol):
    """Turns speech into text. Capabilities: ``"words"`` (word timestamps), ``"language"``."""

    stage: ClassVar[str]
    name: ClassVar[str]
    capabilities: ClassVar[frozenset[str]]

    def load(self) -> None: ...

    def close(self) -> None: ...

    def transcribe(self, audio: Audio, *, language: str | None = None) -> Transcript:
        """Transcribe ``audio``."""
        ...
