"""talkinghead: portrait + text or audio → lip-synced talking-head video, and conversations with it.

>>> from talkinghead import Avatar
>>> video = Avatar("portrait.png").say("Hello there!")      # doctest: +SKIP

Importing the package is cheap: torch, mediapipe and other heavy dependencies load only when a
backend that needs them loads its models.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from .errors import (
    AudioError,
    BackendNotFoundError,
    BadInputError,
    ConfigError,
    FaceTooSmallError,
    ImageError,
    MissingDependencyError,
    ModelLoadError,
    MultipleFacesError,
    NoFaceError,
    NothingUnderstoodError,
    OutputError,
    ServiceError,
    StageError,
    TalkingHeadError,
    TextError,
    VideoError,
    WeightsMissingError,
)
from .hookspecs import hookimpl

__version__ = "0.1.0"

_LAZY = {
    "Avatar": ".avatar",
    "ModelCache": ".cache",
    "default_cache": ".cache",
    "Conversation": ".conversation",
    "load_image": ".io",
    "load_audio": ".io",
    "create_backend": ".plugins",
    "get_registry": ".plugins",
    "Audio": ".values",
    "Portrait": ".values",
    "Face": ".values",
    "FrameChunk": ".values",
    "Video": ".values",
    "Transcript": ".values",
    "ChatMessage": ".values",
    "Reply": ".values",
    "VoiceProfile": ".values",
    "PhonemeTiming": ".values",
    "WordTiming": ".values",
}

if TYPE_CHECKING:  # pragma: no cover
    from .avatar import Avatar
    from .cache import ModelCache, default_cache
    from .conversation import Conversation
    from .io import load_audio, load_image
    from .plugins import create_backend, get_registry
    from .values import (
        Audio,
        ChatMessage,
        Face,
        FrameChunk,
        PhonemeTiming,
        Portrait,
        Reply,
        Transcript,
        Video,
        VoiceProfile,
        WordTiming,
    )


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'talkinghead' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = sorted(
    [
        "hookimpl",
        "TalkingHeadError",
        "ConfigError",
        "BackendNotFoundError",
        "MissingDependencyError",
        "ModelLoadError",
        "WeightsMissingError",
        "StageError",
        "ServiceError",
        "BadInputError",
        "ImageError",
        "NoFaceError",
        "MultipleFacesError",
        "FaceTooSmallError",
        "AudioError",
        "TextError",
        "NothingUnderstoodError",
        "OutputError",
        "VideoError",
        *_LAZY,
    ]
)
