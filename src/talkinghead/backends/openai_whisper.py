"""ASR ``whisper``: the reference openai-whisper implementation (PyTorch).

Takes a model name (``"tiny"``, ``"base.en"``..., downloaded on first use) or the path of a local
checkpoint (a ``torch.save`` of ``{"dims": {...}, "model_state_dict": {...}}``). Audio is passed
as a 16 kHz numpy array, so no ffmpeg is needed; on CPU it runs in float32 without triton.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, ClassVar

from ..errors import ConfigError, MissingDependencyError, ModelLoadError, StageError
from ..hookspecs import hookimpl
from ..stages import BackendBase
from ..values import Audio, Transcript, TranscriptWord

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000


class WhisperASR(BackendBase):
    """OpenAI Whisper (PyTorch reference implementation), by model name or local checkpoint.

    Args:
        model: a whisper model name (``"tiny"``, ``"base.en"``, ``"turbo"``...) or a checkpoint path.
        device: torch device (``"cpu"``, ``"cuda"``).
        download_root: where named models are downloaded (default: whisper's cache).
        language: default language code (None: detect).
        word_timestamps: fill :attr:`Transcript.words` (cross-attention alignment).
        temperature: decoding temperature; 0 is greedy. A tuple enables whisper's fallback.
        beam_size: beam width (None: greedy).
        no_speech_threshold: segments more likely silent than this are dropped.
    """

    stage: ClassVar[str] = "asr"
    name: ClassVar[str] = "whisper"
    capabilities: ClassVar[frozenset[str]] = frozenset({"words", "language", "offline"})

    def __init__(
        self,
        *,
        model: str = "base",
        device: str = "cpu",
        download_root: str | None = None,
        language: str | None = None,
        word_timestamps: bool = True,
        temperature: float | tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0),
        beam_size: int | None = None,
        no_speech_threshold: float = 0.6,
    ) -> None:
        if not model:
            raise ConfigError("whisper needs model= a model name (e.g. 'base') or a checkpoint path")
        self.model, self.device, self.download_root = model, device, download_root
        self.language, self.word_timestamps = language, word_timestamps
        self.temperature = tuple(temperature) if isinstance(temperature, (list, tuple)) else float(temperature)
        self.beam_size, self.no_speech_threshold = beam_size, no_speech_threshold
        self._model: Any = None

    def load(self) -> None:
        if self._model is not None:
            return
        try:
            import whisper
        except ImportError as exc:
            raise MissingDependencyError("openai-whisper", "whisper", "the whisper ASR") from exc
        path = Path(self.model).expanduser()
        looks_like_path = path.suffix in (".pt", ".pth", ".bin") or os.sep in self.model
        if looks_like_path and not path.is_file():
            raise ModelLoadError(f"whisper checkpoint not found: {path}")
        if not looks_like_path and self.model not in whisper.available_models():
            raise ConfigError(
                f"unknown whisper model {self.model!r}; use one of {', '.join(whisper.available_models())} "
                "or the path of a checkpoint file"
            )
        try:
            self._model = whisper.load_model(
                os.fspath(path) if looks_like_path else self.model, device=self.device, download_root=self.download_root
            )
        except Exception as exc:
            raise ModelLoadError(f"could not load whisper model {self.model}: {exc}") from exc
        log.debug("whisper model %s loaded on %s", self.model, self.device)

    def close(self) -> None:
        self._model = None

    def transcribe(self, audio: Audio, *, language: str | None = None) -> Transcript:
        """Transcribe ``audio`` (resampled to 16 kHz, passed as an array: no ffmpeg)."""
        self.load()
        import whisper

        samples = audio.resample(SAMPLE_RATE).samples
        language = language or self.language
        if language and not self._model.is_multilingual and not language.lower().startswith("en"):
            raise ConfigError(f"the whisper model {self.model!r} is English-only; it cannot transcribe {language!r}")
        decode: dict[str, Any] = {"fp16": self.device != "cpu"}
        if self.beam_size:
            decode["beam_size"] = self.beam_size
        try:
            result = whisper.transcribe(
                self._model,
                samples,
                language=language,
                temperature=self.temperature,
                word_timestamps=self.word_timestamps,
                no_speech_threshold=self.no_speech_threshold,
                condition_on_previous_text=False,
                verbose=None,
                **decode,
            )
        except Exception as exc:
            raise StageError("asr", self.name, str(exc)) from exc
        words = []
        for seg in result.get("segments", ()):
            for w in seg.get("words", ()) or ():
                words.append(
                    TranscriptWord(str(w["word"]).strip(), float(w["start"]), float(w["end"]), float(w.get("probability", 1.0)))
                )
        text = " ".join(str(result.get("text", "")).split())
        return Transcript(text=text, language=result.get("language"), words=tuple(words), duration=audio.duration)


@hookimpl
def register_backends(register) -> None:
    """This module's backend registers itself, exactly as a third-party plug-in does."""
    register(WhisperASR)
