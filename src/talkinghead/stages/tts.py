"""Text-to-speech stage."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Protocol, runtime_checkable

from ..errors import TextError
from ..values import Audio, VoiceProfile


def speakable_text(text: str, *, require_words: bool = False) -> str:
    """Collapse whitespace and refuse empty text (for TTS backends and the Avatar).

    Args:
        require_words: also refuse text with no letter or digit (only punctuation).

    Raises:
        TextError: nothing to speak.
    """
    text = " ".join(str(text).split())
    if not text:
        raise TextError("the text is empty; give at least one word to say")
    if require_words and not any(ch.isalnum() for ch in text):
        raise TextError(f"the text {text!r} has no words to speak")
    return text


@runtime_checkable
class TTS(Protocol):
    """Turns text into speech.

    Capabilities: ``"phonemes"`` (fills :attr:`Audio.phonemes`), ``"words"`` (fills
    :attr:`Audio.words`), ``"clone"`` (uses :attr:`VoiceProfile.reference`), ``"offline"``.
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
