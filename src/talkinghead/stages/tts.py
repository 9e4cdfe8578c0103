"""Text-to-speech stage."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Protocol, runtime_checkable

from ..values import Audio, VoiceProfile


@runtime_checkable
class TTS(Protocol):
    """Turns text into speech.

    Capabilities: ``"phonemes"`` (fills :attr:`Audio.phonemes`), ``"words"`` (fills
    :attr:`Audio.words`), ``"clone"`` (uses :attr:`VoiceProfile.reference`), ``"offline"``.

    Optional: ``scripts(voice) -> frozenset[str] | None`` names the writing systems (ISO 15924)
    the voice reads, so the Avatar refuses other text before synthesis; the classmethod
    ``suggest_voices(script) -> list[str]`` says how this backend could speak a script, for that
    error. Long text should be synthesised in bounded pieces (:func:`talkinghead.text.split_sentences`).
    """

    stage: ClassVar[str]
    name: ClassVar[str]
    capabilities: ClassVar[frozenset[str]]

    def load(self) -> None: ...

    def close(self) -> None: ...

    def synthesize(self, text: str, *, voice: VoiceProfile | None = None) -> Audio:
        """Speak ``text``; raise :class:`~talkinghead.errors.TextError` for unusable text."""
        ...

    def voices(self) -> Sequence[str]:
        """Names of the voices this backend can speak with."""
        ...
