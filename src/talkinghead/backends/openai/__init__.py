"""Backends for OpenAI-protocol services: chat LLM, speech synthesis and transcription.

:mod:`.client` holds what the three share (client loading, retries, errors); :mod:`.llm`,
:mod:`.tts` and :mod:`.asr` are the stage backends. The ``openai`` package loads in ``load()``.
"""

from ...hookspecs import hookimpl
from .asr import OpenAIASR
from .llm import OpenAILLM
from .tts import OpenAITTS

__all__ = ["OpenAIASR", "OpenAILLM", "OpenAITTS"]


@hookimpl
def register_backends(register) -> None:
    """The OpenAI-protocol backends register themselves, exactly as a third-party plug-in does."""
    register(OpenAITTS)
    register(OpenAIASR)
    register(OpenAILLM)
