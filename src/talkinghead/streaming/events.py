"""What a live session reports besides its chunks: captions, turns, user speech, metrics.

Events are plain frozen dataclasses. ``frame`` is the global frame index the event belongs to (for
captions: the first frame of the speech), so a client can show them in sync with the video.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Union

from .metrics import TurnMetrics

__all__ = [
    "Caption",
    "TurnStarted",
    "TurnEnded",
    "UserSpeechStarted",
    "UserSpeechEnded",
    "SessionEvent",
    "TurnStatus",
]

TurnStatus = Literal["done", "interrupted", "deadline", "nothing_understood", "error"]


@dataclass(frozen=True)
class Caption:
    """Text of one side of the conversation.

    ``role="user"``: what the user said (typed, or transcribed when their speech ended).
    ``role="assistant"``: a sentence of the answer, sent when its first frame is emitted.
    """

    role: Literal["user", "assistant"]
    text: str
    turn: int | None
    frame: int | None = None


@dataclass(frozen=True)
class TurnStarted:
    """A turn began: ``source`` is ``"text"``, ``"audio"`` (spoken question), ``"say"``, ``"speak"`` or ``"external"``."""

    turn: int
    source: str
    frame: int


@dataclass(frozen=True)
class TurnEnded:
    """A turn ended; ``status`` says how, ``answer`` is what was actually spoken (and remembered)."""

    turn: int
    status: TurnStatus
    frame: int
    answer: str = ""
    error: str | None = None
    metrics: TurnMetrics | None = field(default=None, compare=False)


@dataclass(frozen=True)
class UserSpeechStarted:
    """Voice activity began in the user's audio (a barge-in when the avatar was speaking)."""

    frame: int


@dataclass(frozen=True)
class UserSpeechEnded:
    """The user's speech ended (``seconds`` long); a turn with it follows."""

    frame: int
    seconds: float


SessionEvent = Union[Caption, TurnStarted, TurnEnded, UserSpeechStarted, UserSpeechEnded]


def event_dict(event: Any) -> dict[str, Any]:
    """A JSON-friendly dict of an event, with its type name under ``"type"``."""
    from dataclasses import asdict

    out = {"type": type(event).__name__}
    for k, v in asdict(event).items():
        out[k] = v
    if getattr(event, "metrics", None) is not None:
        out["metrics"] = event.metrics.as_dict()
    return out
