"""Built-in backends. They register through the same hook as third-party plug-ins.

Each entry is ``"module:Class"`` relative to this package. Backend modules import only light
dependencies at module level; models and heavy libraries load in ``load()``.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module

from ..hookspecs import hookimpl

BUILTIN_BACKENDS: tuple[str, ...] = (
    "piper:PiperTTS",
    "espeak:EspeakTTS",
    "openai_tts:OpenAITTS",
    "azure_tts:AzureTTS",
    "faster_whisper:FasterWhisperASR",
    "openai_whisper:WhisperASR",
    "openai_asr:OpenAIASR",
    "openai_llm:OpenAILLM",
    "llama_cpp:LlamaCppLLM",
    "mp4:Mp4Writer",
    "viseme:VisemeAnimator",
    "sadtalker.backend:SadTalkerAnimator",
    "gfpgan:GFPGANEnhancer",
)


@hookimpl
def register_backends(register: Callable[[type], None]) -> None:
    for spec in BUILTIN_BACKENDS:
        module, _, cls = spec.partition(":")
        register(getattr(import_module(f"{__name__}.{module}"), cls))
