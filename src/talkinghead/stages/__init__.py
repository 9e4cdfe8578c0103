"""One typed Protocol per pipeline stage.

A backend implements one of these; :mod:`talkinghead.plugins` registers it under its ``stage`` and
``name``. The protocols are runtime-checkable, so ``isinstance(obj, TTS)`` checks the methods.
"""

from ..text import speakable_text
from .animator import Animator, AnimatorStream, ProgressCallback, StreamingAnimator, check_render, frame_count
from .asr import ASR
from .bankable import BankableAnimator, is_bankable
from .base import STAGES, Backend, BackendBase
from .enhancer import Enhancer
from .llm import LLM
from .tts import TTS, StreamingTTS, TTSBase, synthesize_sentences
from .writer import Writer

PROTOCOLS: dict[str, type] = {
    "asr": ASR,
    "llm": LLM,
    "tts": TTS,
    "animator": Animator,
    "enhancer": Enhancer,
    "writer": Writer,
}

__all__ = [
    "ASR",
    "LLM",
    "TTS",
    "StreamingTTS",
    "TTSBase",
    "synthesize_sentences",
    "Animator",
    "BankableAnimator",
    "is_bankable",
    "AnimatorStream",
    "StreamingAnimator",
    "Enhancer",
    "Writer",
    "Backend",
    "BackendBase",
    "STAGES",
    "PROTOCOLS",
    "ProgressCallback",
    "frame_count",
    "check_render",
    "speakable_text",
]
