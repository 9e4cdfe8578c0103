"""Text-to-speech stage."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, ClassVar, Protocol, runtime_checkable

from ..text import split_sentences
from ..values import Audio, SpokenSentence, VoiceProfile
from .base import BackendBase


@runtime_checkable
class TTS(Protocol):
    """Turns text into speech.

    Capabilities: ``"phonemes"`` (fills :attr:`Audio.phonemes`), ``"words"`` (fills
    :attr:`Audio.words`), ``"clone"`` (uses :attr:`VoiceProfile.reference`), ``"offline"``,
    ``"stream"`` (implements :meth:`StreamingTTS.synthesize_stream`).

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


@runtime_checkable
class StreamingTTS(TTS, Protocol):
    """A TTS that speaks long text piece by piece, each piece as soon as it is ready."""

    def synthesize_stream(self, text: str, *, voice: VoiceProfile | None = None) -> Iterator[SpokenSentence]:
        """Yield the speech of ``text`` sentence by sentence, in order."""
        ...


def synthesize_sentences(tts: Any, text: str, *, voice: VoiceProfile | None = None) -> Iterator[SpokenSentence]:
    """Speak ``text`` one sentence (of :func:`~talkinghead.text.split_sentences`) at a time with ``tts.synthesize``.

    The first sentence's audio is ready after one sentence's synthesis, not the whole text's, and
    memory stays bounded however long the text is.
    """
    for sentence in split_sentences(text):
        yield SpokenSentence(sentence, tts.synthesize(sentence, voice=voice))


class TTSBase(BackendBase):
    """Base class for TTS backends: :meth:`synthesize_stream` speaks sentence by sentence.

    A backend with a faster native way to stream overrides it.
    """

    def synthesize_stream(self, text: str, *, voice: VoiceProfile | None = None) -> Iterator[SpokenSentence]:
        """Yield the speech of ``text`` sentence by sentence (see :func:`synthesize_sentences`)."""
        return synthesize_sentences(self, text, voice=voice)
