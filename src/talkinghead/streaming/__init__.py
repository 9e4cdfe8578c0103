"""Streaming: audio and video on one clock, chunk by chunk, for live consumers.

* :class:`~talkinghead.values.AVChunk` — frames and exactly the audio samples they cover;
* :class:`StreamClock` — fps and sample rate with a whole number of samples per frame;
* :class:`StreamEngine` — speech segments in, an endless run of chunks out (idle in between);
* :class:`LiveSession` — a conversation on top (turns, voice activity, barge-in, events);
* :func:`open_animator_stream`, :func:`stream_speech`, :func:`stream_answer` — make any backend stream;
* :class:`StreamResampler` — resample audio that arrives in pieces;
* :func:`write_fmp4` — fragmented MP4 to any binary stream (plays in a browser while it is written).

Start from :meth:`talkinghead.Avatar.stream` (one utterance) or :meth:`talkinghead.Avatar.live`.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from .clock import STREAM_FPS, STREAM_SAMPLE_RATE, StreamClock

_LAZY = {
    "StreamEngine": ".engine",
    "Segment": ".engine",
    "LiveSession": ".session",
    "Turn": ".turns",
    "TurnMetrics": ".metrics",
    "Caption": ".events",
    "TurnStarted": ".events",
    "TurnEnded": ".events",
    "UserSpeechStarted": ".events",
    "UserSpeechEnded": ".events",
    "event_dict": ".events",
    "open_animator_stream": ".adapters",
    "stream_speech": ".adapters",
    "stream_answer": ".adapters",
    "ClipAnimatorStream": ".adapters",
    "StreamResampler": ".resample",
    "SileroVAD": ".vad",
    "EnergyVAD": ".vad",
    "VoiceActivity": ".vad",
    "write_fmp4": ".fmp4",
    "Fmp4Encoder": ".fmp4",
}

__all__ = ["STREAM_FPS", "STREAM_SAMPLE_RATE", "StreamClock", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
