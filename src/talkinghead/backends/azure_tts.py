"""TTS ``azure``: Azure AI Speech neural voices, with word-boundary and viseme timings.

Needs ``pip install 'talkinghead[azure]'`` (the ``azure-cognitiveservices-speech`` SDK) and a
Speech resource key (``AZURE_SPEECH_KEY``) with its region (``AZURE_SPEECH_REGION``) or endpoint.
Word boundaries fill :attr:`Audio.words`; visemes fill :attr:`Audio.phonemes` with one
representative IPA phoneme per Azure viseme id, so phoneme-driven animators can use them.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from typing import Any, ClassVar
from xml.sax.saxutils import escape, quoteattr

import numpy as np

from ..errors import ConfigError, MissingDependencyError, ServiceError, StageError
from ..hookspecs import hookimpl
from ..stages import TTSBase, speakable_text
from ..values import Audio, PhonemeTiming, VoiceProfile, WordTiming

log = logging.getLogger(__name__)

KEY_ENV = "AZURE_SPEECH_KEY"
REGION_ENV = "AZURE_SPEECH_REGION"

#: One representative IPA phoneme per Azure viseme id (Azure's en-US viseme table, ids 0–21).
AZURE_VISEME_PHONEMES: dict[int, str] = {
    0: " ", 1: "ə", 2: "ɑ", 3: "ɔ", 4: "ɛ", 5: "ɝ", 6: "i", 7: "u", 8: "o", 9: "aʊ", 10: "ɔɪ",
    11: "aɪ", 12: "h", 13: "ɹ", 14: "l", 15: "s", 16: "ʃ", 17: "ð", 18: "f", 19: "t", 20: "k", 21: "p",
}

_SAMPLE_RATES = {8000: "Raw8Khz16BitMonoPcm", 16000: "Raw16Khz16BitMonoPcm", 22050: "Raw22050Hz16BitMonoPcm",
                 24000: "Raw24Khz16BitMonoPcm", 44100: "Raw44100Hz16BitMonoPcm", 48000: "Raw48Khz16BitMonoPcm"}

_TICKS_PER_SECOND = 10_000_000  # the SDK's audio offsets are in 100-ns ticks


def _prosody_value(value: float | str | None, unit: str) -> str | None:
    """1.1 → "+10%" (rate) / a number of semitones → "+2st" (pitch); strings pass through."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if unit == "%":
        return f"{(float(value) - 1.0) * 100:+.0f}%"
    return f"{float(value):+.1f}st"


def build_ssml(
    text: str,
    *,
    voice: str,
    language: str | None = None,
    rate: float | str | None = None,
    pitch: float | str | None = None,
    style: str | None = None,
    style_degree: float | None = None,
) -> str:
    """The SSML document for ``text``: voice, optional speaking style and prosody (rate, pitch).

    Args:
        rate: a factor (1.1 is 10 % faster) or an SSML value (``"fast"``, ``"+10%"``).
        pitch: semitones (+2) or an SSML value (``"high"``, ``"+5%"``).
        style: an ``mstts:express-as`` style (``"cheerful"``, ``"sad"``...) where the voice has it.
    """
    language = language or "-".join(voice.split("-")[:2]) or "en-US"
    body = escape(text)
    prosody = {"rate": _prosody_value(rate, "%"), "pitch": _prosody_value(pitch, "st")}
    attrs = " ".join(f"{k}={quoteattr(v)}" for k, v in prosody.items() if v is not None)
    if attrs:
        body = f"<prosody {attrs}>{body}</prosody>"
    if style:
        degree = f" styledegree={quoteattr(f'{style_degree:g}')}" if style_degree is not None else ""
        body = f"<mstts:express-as style={quoteattr(style)}{degree}>{body}</mstts:express-as>"
    return (
        '<speak version="1.0" xmlns="http://www.w3.org/2001/10/synthesis" '
        f'xmlns:mstts="https://www.w3.org/2001/mstts" xml:lang={quoteattr(language)}>'
        f"<voice name={quoteattr(voice)}>{body}</voice></speak>"
    )


def _seconds(offset: Any) -> float:
    """An SDK offset (ticks int, or timedelta) in seconds."""
    if hasattr(offset, "total_seconds"):
        return float(offset.total_seconds())
    return float(offset) / _TICKS_PER_SECOND


def words_from_events(events: Sequence[Any], duration: float) -> tuple[WordTiming, ...]:
    """Map word-boundary events (``audio_offset`` ticks, ``duration`` timedelta, ``text``) to words.

    Punctuation and sentence boundaries are skipped.
    """
    out = []
    for ev in events:
        kind = str(getattr(ev, "boundary_type", "Word"))
        if "Punctuation" in kind or "Sentence" in kind:
            continue
        start = _seconds(ev.audio_offset)
        length = _seconds(getattr(ev, "duration", 0) or 0)
        end = min(duration, start + length) if length > 0 else start
        text = str(getattr(ev, "text", "")).strip()
        if text:
            out.append(WordTiming(text, min(start, duration), max(end, min(start, duration))))
    return tuple(out)


def phonemes_from_visemes(events: Sequence[Any], duration: float) -> tuple[PhonemeTiming, ...]:
    """Map viseme events (``audio_offset`` ticks, ``viseme_id``) to phoneme timings.

    Each viseme lasts until the next one starts; the last until the end of the audio.
    """
    marks = sorted((_seconds(ev.audio_offset), int(ev.viseme_id)) for ev in events)
    out = []
    for i, (t, vid) in enumerate(marks):
        end = marks[i + 1][0] if i + 1 < len(marks) else duration
        t, end = min(t, duration), min(max(end, t), duration)
        if end > t:
            out.append(PhonemeTiming(AZURE_VISEME_PHONEMES.get(vid, " "), t, end))
    return tuple(out)


class AzureTTS(TTSBase):
    """Azure AI Speech neural voices with word boundaries and visemes (needs a Speech key).

    Args:
        voice: a neural voice short name (``"en-US-JennyNeural"``; see :meth:`voices`).
        language: SSML language (default: from the voice name).
        rate: speaking-rate factor (1.1 = 10 % faster) or an SSML rate value.
        pitch: pitch shift in semitones or an SSML pitch value.
        style: speaking style (``"cheerful"``, ``"empathetic"``...) for voices that have styles.
        style_degree: style intensity 0.01–2.
        key: Speech resource key (None reads ``AZURE_SPEECH_KEY``).
        region: resource region (None reads ``AZURE_SPEECH_REGION``), or give ``endpoint``.
        endpoint: a custom endpoint URL instead of the region.
        sample_rate: output rate (8000, 16000, 22050, 24000, 44100 or 48000).
    """

    stage: ClassVar[str] = "tts"
    name: ClassVar[str] = "azure"
    capabilities: ClassVar[frozenset[str]] = frozenset({"phonemes", "words", "visemes", "remote", "stream"})

    def __init__(
        self,
        *,
        voice: str = "en-US-JennyNeural",
        language: str | None = None,
        rate: float | str | None = None,
        pitch: float | str | None = None,
        style: str | None = None,
        style_degree: float | None = None,
        key: str | None = None,
        region: str | None = None,
        endpoint: str | None = None,
        sample_rate: int = 24000,
    ) -> None:
        if sample_rate not in _SAMPLE_RATES:
            raise ConfigError(f"sample_rate must be one of {sorted(_SAMPLE_RATES)}, got {sample_rate}")
        if style_degree is not None and not 0.01 <= style_degree <= 2:
            raise ConfigError(f"style_degree must be between 0.01 and 2, got {style_degree}")
        self.voice, self.language, self.rate, self.pitch = voice, language, rate, pitch
        self.style, self.style_degree = style, style_degree
        self.key, self.region, self.endpoint, self.sample_rate = key, region, endpoint, sample_rate
        self._sdk: Any = None
        self._config: Any = None

    def load(self) -> None:
        if self._config is not None:
            return
        try:
            import azure.cognitiveservices.speech as speechsdk
        except ImportError as exc:
            raise MissingDependencyError("azure-cognitiveservices-speech", "azure", "the azure TTS") from exc
        key = self.key or os.environ.get(KEY_ENV, "").strip()
        if not key:
            raise ConfigError(f"the azure TTS needs a Speech key: set the environment variable {KEY_ENV} or pass key=...")
        region = self.region or os.environ.get(REGION_ENV, "").strip() or None
        if not region and not self.endpoint:
            raise ConfigError(
                f"the azure TTS needs the resource region: set {REGION_ENV} (e.g. westeurope) or pass region= or endpoint="
            )
        if self.endpoint:
            config = speechsdk.SpeechConfig(subscription=key, endpoint=self.endpoint)
        else:
            config = speechsdk.SpeechConfig(subscription=key, region=region)
        config.set_speech_synthesis_output_format(
            getattr(speechsdk.SpeechSynthesisOutputFormat, _SAMPLE_RATES[self.sample_rate])
        )
        self._sdk, self._config = speechsdk, config

    def close(self) -> None:
        self._sdk = self._config = None

    def _synthesizer(self) -> Any:
        return self._sdk.SpeechSynthesizer(speech_config=self._config, audio_config=None)

    def voices(self) -> Sequence[str]:
        """Short names of the voices available to the resource (asks the service)."""
        self.load()
        result = self._synthesizer().get_voices_async().get()
        if result.reason != self._sdk.ResultReason.VoicesListRetrieved:
            raise ServiceError("tts", self.name, f"could not list voices: {getattr(result, 'error_details', '')}")
        return sorted(v.short_name for v in result.voices)

    def ssml(self, text: str, voice: VoiceProfile | None = None) -> str:
        """The SSML that :meth:`synthesize` sends for ``text``."""
        name = (voice.voice if voice is not None and voice.voice else None) or self.voice
        language = (voice.language if voice is not None and voice.language else None) or self.language
        return build_ssml(
            text, voice=name, language=language, rate=self.rate, pitch=self.pitch,
            style=self.style, style_degree=self.style_degree,
        )

    def synthesize(self, text: str, *, voice: VoiceProfile | None = None) -> Audio:
        """Speak ``text`` with word and viseme timings.

        Raises:
            ServiceError: the service refused or failed (``transient`` for network/throttling).
        """
        text = speakable_text(text)
        if voice is not None and voice.reference is not None:
            log.warning("tts azure cannot clone from reference audio here; using the named voice")
        self.load()
        synthesizer = self._synthesizer()
        lock = threading.Lock()
        words: list[Any] = []
        visemes: list[Any] = []

        def on_word(evt: Any) -> None:
            with lock:
                words.append(evt)

        def on_viseme(evt: Any) -> None:
            with lock:
                visemes.append(evt)

        synthesizer.synthesis_word_boundary.connect(on_word)
        synthesizer.viseme_received.connect(on_viseme)
        result = synthesizer.speak_ssml_async(self.ssml(text, voice)).get()
        if result.reason != self._sdk.ResultReason.SynthesizingAudioCompleted:
            details = getattr(result, "cancellation_details", None)
            message = getattr(details, "error_details", "") or str(getattr(details, "reason", result.reason))
            transient = any(s in message.lower() for s in ("timeout", "throttl", "429", "connection", "network"))
            raise ServiceError("tts", self.name, f"synthesis was cancelled: {message}", transient=transient)
        data = bytes(result.audio_data or b"")
        if len(data) < 2:
            raise StageError("tts", self.name, "the service returned no audio")
        samples = np.frombuffer(data[: len(data) // 2 * 2], dtype="<i2").astype(np.float32) / 32768.0
        duration = len(samples) / self.sample_rate
        with lock:
            w, v = list(words), list(visemes)
        return Audio(
            samples, self.sample_rate, phonemes=phonemes_from_visemes(v, duration), words=words_from_events(w, duration)
        )


@hookimpl
def register_backends(register) -> None:
    """This module's backend registers itself, exactly as a third-party plug-in does."""
    register(AzureTTS)
