"""ASR ``openai``: the transcriptions API of OpenAI or any compatible server (``base_url``)."""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from ...errors import ConfigError
from ...values import Audio, Transcript, TranscriptWord
from . import client as oc

log = logging.getLogger(__name__)

#: ISO codes for the language names that the API reports in ``verbose_json``.
_LANGUAGE_CODES = {
    "english": "en", "german": "de", "french": "fr", "spanish": "es", "italian": "it", "portuguese": "pt",
    "dutch": "nl", "russian": "ru", "chinese": "zh", "japanese": "ja", "korean": "ko", "polish": "pl",
    "turkish": "tr", "arabic": "ar", "hindi": "hi", "swedish": "sv", "ukrainian": "uk", "czech": "cs",
}


class OpenAIASR(oc.ClientBackend):
    """Speech recognition through the OpenAI transcriptions API (or a compatible server).

    Args:
        model: ``"whisper-1"``, ``"gpt-4o-transcribe"``, ``"gpt-4o-mini-transcribe"``, or the
            server's model name.
        base_url, api_key, api_key_env, api_version, timeout, retries, backoff, max_backoff: as for
            the ``openai`` LLM backend.
        language: default language code (None: detect).
        prompt: text that biases recognition (names, jargon).
        word_timestamps: ask for per-word times (``verbose_json``; only ``whisper-1`` gives them).
    """

    stage: ClassVar[str] = "asr"
    name: ClassVar[str] = "openai"
    capabilities: ClassVar[frozenset[str]] = frozenset({"words", "language", "remote"})

    def __init__(
        self,
        *,
        model: str = "whisper-1",
        base_url: str | None = None,
        api_key: str | None = None,
        api_key_env: str | None = None,
        api_version: str | None = None,
        language: str | None = None,
        prompt: str | None = None,
        word_timestamps: bool = True,
        timeout: float = 60.0,
        retries: int = 3,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
    ) -> None:
        if retries < 0:
            raise ConfigError(f"retries must be >= 0, got {retries}")
        self.model, self.base_url, self.api_key, self.api_key_env = model, base_url, api_key, api_key_env
        self.api_version, self.language, self.prompt, self.word_timestamps = api_version, language, prompt, word_timestamps
        self.timeout, self.retries, self.backoff, self.max_backoff = timeout, retries, backoff, max_backoff
        self._client: Any = None


    def transcribe(self, audio: Audio, *, language: str | None = None) -> Transcript:
        """Upload ``audio`` as 16 kHz WAV and return the server's transcript."""
        self.load()
        data = oc.wav_bytes(audio)
        # the gpt-4o transcription models answer only json/text; whisper-1 and most servers do verbose_json
        verbose = self.word_timestamps and not self.model.startswith("gpt-4o")
        request: dict[str, Any] = {
            "model": self.model,
            "file": ("speech.wav", data, "audio/wav"),
            "response_format": "verbose_json" if verbose else "json",
        }
        if verbose:
            request["timestamp_granularities"] = ["word"]
        if language or self.language:
            request["language"] = language or self.language
        if self.prompt:
            request["prompt"] = self.prompt
        result = oc.with_retries(
            lambda: self._client.audio.transcriptions.create(**request, timeout=self._attempt_timeout()),
            stage="asr", backend=self.name, base_url=self.base_url,
            key_env=oc.key_env_name(self.api_key_env, self.api_version),
            retries=self.retries, backoff=self.backoff, max_backoff=self.max_backoff,
        )
        text = " ".join(str(_get(result, "text", "") or "").split())
        words = tuple(
            TranscriptWord(str(_get(w, "word", "")).strip(), float(_get(w, "start", 0.0)), float(_get(w, "end", 0.0)))
            for w in (_get(result, "words", None) or ())
        )
        lang = _get(result, "language", None) or language or self.language
        if isinstance(lang, str):
            lang = _LANGUAGE_CODES.get(lang.lower(), lang)
        return Transcript(text=text, language=lang, words=words, duration=audio.duration)


def _get(obj: Any, key: str, default: Any) -> Any:
    if isinstance(obj, dict):
        return obj.get(key, default)
    return getattr(obj, key, default)
