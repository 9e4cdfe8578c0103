"""The bank's speech set: phonetically rich sentences shipped with the package, spoken by a TTS at
build time, so the driving parameters the bank covers come from real speech of the chosen voice."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from functools import lru_cache
from importlib import resources

import numpy as np

from ...values import Audio, PhonemeTiming

__all__ = ["sentences", "speech_set_id", "speak_sentences", "PAD_S"]

#: Silence added before and after each sentence (the rest states are part of the set too).
PAD_S = 0.3


@lru_cache(maxsize=1)
def _text() -> str:
    return resources.files(__package__).joinpath("speech_set.txt").read_text(encoding="utf-8")


def sentences() -> list[str]:
    """The sentences of the speech set, in order."""
    return [ln.strip() for ln in _text().splitlines() if ln.strip() and not ln.lstrip().startswith("#")]


def speech_set_id() -> str:
    """A short hash of the speech set (part of every bank's cache key)."""
    return "en-" + hashlib.sha256("\n".join(sentences()).encode()).hexdigest()[:10]


def pad(audio: Audio, seconds: float = PAD_S) -> Audio:
    """``audio`` with ``seconds`` of silence on both sides (phoneme timings shifted)."""
    n = int(round(seconds * audio.sample_rate))
    z = np.zeros(n, np.float32)
    shift = n / audio.sample_rate
    ph = tuple(PhonemeTiming(p.phoneme, p.start + shift, p.end + shift) for p in audio.phonemes)
    return Audio(np.concatenate([z, audio.samples, z]), audio.sample_rate, phonemes=ph)


def speak_sentences(tts, limit: int | None = None,
                    progress: Callable[[int, int], None] | None = None) -> Iterator[Audio]:
    """Each sentence spoken by ``tts`` (a loaded TTS backend), padded with silence."""
    items = sentences()[:limit] if limit else sentences()
    for i, text in enumerate(items):
        yield pad(tts.synthesize(text))
        if progress is not None:
            progress(i + 1, len(items))
