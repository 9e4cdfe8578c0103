"""TTS ``openai``: the speech API of OpenAI or any compatible server (``base_url``)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, ClassVar

from ...errors import ConfigError, StageError, TextError
from ...stages import TTSBase, speakable_text
from ...values import Audio, VoiceProfile
from . import client as oc

log = logging.getLogger(__name__)

#: The voices of OpenAI's speech models.
OPENAI_VOICES = (
    "alloy", "ash", "ballad", "coral", "echo", "fable", "nova", "onyx", "sage", "shimmer", "verse",
)

#: Writing systems of the languages OpenAI documents for its speech API (besides Latin).
SCRIPTS = frozenset({"Arab", "Armn", "Cyrl", "Grek", "Hani", "Hebr", "Deva", "Hira", "Kana", "Knda", "Hang", "Taml", "Thai"})

#: Longest input the speech API accepts (characters).
MAX_INPUT_CHARS = 4096


class OpenAITTS(oc.ClientBackend, TTSBase):
    """Speech from the OpenAI speech API (or a compatible server such as a local TTS gateway).

    Args:
        model: ``"gpt-4o-mini-tts"``, ``"tts-1"``, ``"tts-1-hd"`` or the server's model name.
        voice: a voice name (see :meth:`voices`).
        speed: 0.25–4.0.
        instructions: how to speak (tone, accent), for ``gpt-4o-mini-tts``.
        response_format: ``"wav"`` or ``"pcm"`` (24 kHz 16-bit); both decode without ffmpeg.
        voices_list: the voice names of a non-OpenAI server, for :meth:`voices`.
        base_url, api_key, api_key_env, api_version, timeout, retries, backoff, max_backoff: as for
            the ``openai`` LLM backend.
    """

    stage: ClassVar[str] = "tts"
    name: ClassVar[str] = "openai"
    capabilities: ClassVar[frozenset[str]] = frozenset({"remote", "stream"})

    def __init__(
        self,
        *,
        model: str = "gpt-4o-mini-tts",
        voice: str = "alloy",
        speed: float = 1.0,
        instructions: str | None = None,
        response_format: str = "wav",
        voices_list: Sequence[str] | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        api_key_env: str | None = None,
        api_version: str | None = None,
        timeout: float = 60.0,
        retries: int = 3,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
    ) -> None:
        if response_format not in ("wav", "pcm"):
            raise ConfigError(f"response_format must be 'wav' or 'pcm', got {response_format!r}")
        if not 0.25 <= speed <= 4.0:
            raise ConfigError(f"speed must be between 0.25 and 4.0, got {speed}")
        self.model, self.voice, self.speed, self.instructions = model, voice, speed, instructions
        self.response_format = response_format
        self.voices_list = tuple(voices_list) if voices_list else None
        self.base_url, self.api_key, self.api_key_env, self.api_version = base_url, api_key, api_key_env, api_version
        self.timeout, self.retries, self.backoff, self.max_backoff = timeout, retries, backoff, max_backoff
        self._client: Any = None


    @classmethod
    def suggest_voices(cls, script: str) -> list[str]:
        """OpenAI's speech voices read the languages of Whisper's list, in these scripts."""
        if script not in SCRIPTS:
            return []
        return ["tts='openai' (OpenAI's voices speak it; needs OPENAI_API_KEY and a network)"]

    def voices(self) -> Sequence[str]:
        """The voice names (OpenAI's, or ``voices_list`` for another server)."""
        return list(self.voices_list or OPENAI_VOICES)

    def synthesize(self, text: str, *, voice: VoiceProfile | None = None) -> Audio:
        """Speak ``text``. ``voice.voice`` picks another voice; reference audio is not used."""
        text = speakable_text(text)
        if len(text) > MAX_INPUT_CHARS:
            raise TextError(f"the text is {len(text)} characters; the speech API takes at most {MAX_INPUT_CHARS}")
        name = self.voice
        if voice is not None:
            if voice.reference is not None:
                log.warning("tts openai cannot clone a voice; the reference audio is ignored")
            name = voice.voice or name
        self.load()
        request: dict[str, Any] = {
            "model": self.model,
            "voice": name,
            "input": text,
            "response_format": self.response_format,
            "speed": self.speed,
        }
        if self.instructions:
            request["instructions"] = self.instructions

        def call() -> bytes:
            response = self._client.audio.speech.create(**request, timeout=self._attempt_timeout())
            return response.read() if hasattr(response, "read") else bytes(response.content)

        data = oc.with_retries(
            call, stage="tts", backend=self.name, base_url=self.base_url,
            key_env=oc.key_env_name(self.api_key_env, self.api_version),
            retries=self.retries, backoff=self.backoff, max_backoff=self.max_backoff,
        )
        if not data:
            raise StageError("tts", self.name, "the server returned no audio; try again")
        try:
            return oc.decode_audio(data, self.response_format)
        except Exception as exc:
            raise StageError("tts", self.name, f"could not decode the server's {self.response_format} audio: {exc}") from exc
