"""Typed settings of the HTTP server: where it keeps data, its limits, and the stages it uses.

Everything the server does is decided here, at the edge; :func:`talkinghead.server.create_app`
takes one :class:`ServerSettings`, and ``talkinghead serve`` builds it from flags.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..io import MAX_AUDIO_SECONDS, MAX_IMAGE_PIXELS

__all__ = ["ServerSettings", "default_data_dir", "DEFAULT_STAGES", "DEFAULT_CLIENT_OPTIONS"]

#: Backends used when a request names none (``animator=None`` picks sadtalker when its weights
#: are cached, else viseme; ``llm=None`` turns conversations off).
DEFAULT_STAGES: Mapping[str, str | None] = {
    "tts": "piper",
    "animator": None,
    "enhancer": None,
    "writer": "mp4",
    "asr": "faster-whisper",
    "llm": None,
}

#: Animator options a client may set per request or per saved avatar (values are still checked by
#: the backend). Anything else — paths, devices, batch sizes — only the operator sets, in
#: ``backend_options``. Every distinct option set is its own backend instance in the model cache,
#: so keep this list short.
DEFAULT_CLIENT_OPTIONS: Mapping[str, tuple[str, ...]] = {
    "viseme": ("seed", "mouth_scale", "blink_rate", "head_motion", "emotion"),
    "sadtalker": ("pose_style", "expression_scale", "still", "seed", "emotion"),
}


def default_data_dir() -> Path:
    """``platformdirs.user_data_dir("talkinghead")/server`` (or ``~/.local/share/talkinghead/server``)."""
    try:
        import platformdirs

        return Path(platformdirs.user_data_dir("talkinghead")) / "server"
    except ImportError:  # pragma: no cover - platformdirs is a core dependency
        return Path.home() / ".local" / "share" / "talkinghead" / "server"


@dataclass(frozen=True)
class ServerSettings:
    """What the server stores, allows and runs.

    Args:
        data_dir: jobs, videos, saved avatars and conversations live under this folder (the local
            store). Created if missing.
        token: when set, every ``/v1`` request needs ``Authorization: Bearer <token>`` (or the
            cookie the page gets from ``POST /v1/auth``).
        cors_origins: origins allowed to call the API from another site; empty (the default)
            adds no CORS headers at all.
        job_workers: render jobs (and conversation turns) that run at the same time; the rest wait
            in the queue. On a 2-core machine 1–2 is right.
        max_queued: jobs waiting or running at most; more are refused with 503 and ``Retry-After``.
        job_ttl: seconds a finished job (and its video) is kept before it expires.
        conversation_ttl: seconds an idle conversation is kept.
        sweep_interval: seconds between expiry sweeps.
        request_workers: threads for blocking work done while a request waits (decoding
            uploads, checking a portrait); separate from the job workers.
        max_upload_bytes: largest request body accepted (checked while it arrives).
        max_image_pixels: largest portrait (width × height), checked from the header before decoding.
        max_audio_seconds: longest audio upload, checked from the container before decoding.
        max_text_chars: longest text to speak.
        max_fps: highest frame rate a client may ask for.
        max_avatars: saved avatars at most.
        max_portrait_size: portraits are stored downscaled to this long side.
        rate_limit: work requests (new jobs, turns, avatars) per minute and client.
        rate_burst: how many work requests a client may make at once before the rate applies.
        read_rate_limit: other API requests (status polls, downloads) per minute and client.
        trust_forwarded_for: take the client address for rate limits from ``X-Forwarded-For``
            (only behind a proxy you run).
        stages: default backend name per stage (see :data:`DEFAULT_STAGES`).
        backend_options: operator options per stage and backend, e.g.
            ``{"llm": {"openai": {"base_url": "http://localhost:11434/v1", "model": "llama3.2"}}}``.
        allowed_backends: per stage, the backend names clients may choose; a stage not listed
            allows every registered backend.
        client_options: per animator, the options a client may set (see :data:`DEFAULT_CLIENT_OPTIONS`).
        system_prompt: persona of avatars that do not set their own.
        memory: previous exchanges a conversation sends to the LLM.
        turn_timeout: seconds a conversation turn request waits for its video before answering
            202 with the job to poll.
        max_portraits: prepared portraits kept in memory (per-portrait preprocessing cache).
        max_sessions: conversation sessions kept warm in memory.
        session_idle: seconds a warm session is kept without use (its conversation stays in the store).
    """

    data_dir: Path = field(default_factory=default_data_dir)
    token: str | None = None
    cors_origins: tuple[str, ...] = ()
    job_workers: int = 1
    max_queued: int = 16
    job_ttl: float = 3600.0
    conversation_ttl: float = 24 * 3600.0
    sweep_interval: float = 60.0
    request_workers: int = 4
    max_upload_bytes: int = 25 * 1024 * 1024
    max_image_pixels: int = 25_000_000
    max_audio_seconds: float = 120.0
    max_text_chars: int = 2000
    max_fps: float = 30.0
    max_avatars: int = 500
    max_portrait_size: int = 1024
    rate_limit: float = 30.0
    rate_burst: int = 10
    read_rate_limit: float = 1200.0
    trust_forwarded_for: bool = False
    stages: Mapping[str, str | None] = field(default_factory=lambda: dict(DEFAULT_STAGES))
    backend_options: Mapping[str, Mapping[str, Mapping[str, Any]]] = field(default_factory=dict)
    allowed_backends: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    client_options: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: dict(DEFAULT_CLIENT_OPTIONS))
    system_prompt: str | None = None
    memory: int = 2
    turn_timeout: float = 120.0
    max_portraits: int = 32
    max_sessions: int = 32
    session_idle: float = 600.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "data_dir", Path(os.fspath(self.data_dir)).expanduser())
        object.__setattr__(self, "cors_origins", tuple(self.cors_origins))
        object.__setattr__(self, "stages", {**DEFAULT_STAGES, **dict(self.stages)})
        positive = (
            "job_workers", "max_queued", "job_ttl", "conversation_ttl", "sweep_interval", "request_workers",
            "max_upload_bytes", "max_image_pixels", "max_audio_seconds", "max_text_chars", "max_fps",
            "max_avatars", "max_portrait_size", "rate_limit", "rate_burst", "read_rate_limit", "turn_timeout",
            "max_portraits", "max_sessions", "session_idle",
        )
        for name in positive:
            if not getattr(self, name) > 0:
                raise ConfigError(f"server setting {name} must be positive, got {getattr(self, name)!r}")
        if self.max_image_pixels > MAX_IMAGE_PIXELS:
            raise ConfigError(f"max_image_pixels may be at most the library's limit, {MAX_IMAGE_PIXELS}")
        if self.max_audio_seconds > MAX_AUDIO_SECONDS:
            raise ConfigError(f"max_audio_seconds may be at most the library's limit, {MAX_AUDIO_SECONDS:g}")
        if not 1 <= self.max_fps <= 60:
            raise ConfigError(f"max_fps must be between 1 and 60, got {self.max_fps}")
        if self.memory < 0:
            raise ConfigError(f"memory must be >= 0, got {self.memory}")
        unknown = set(self.stages) - set(DEFAULT_STAGES)
        if unknown:
            raise ConfigError(f"unknown stage(s) in stages: {', '.join(sorted(unknown))}")
        if self.token is not None and not self.token.strip():
            raise ConfigError("token must not be empty; leave it unset to run without a token")

    def with_(self, **changes: Any) -> ServerSettings:
        """A copy with some fields changed."""
        names = {f.name for f in fields(self)}
        bad = sorted(set(changes) - names)
        if bad:
            raise ConfigError(f"unknown server setting(s): {', '.join(bad)}")
        return replace(self, **changes)

    def options_for(self, stage: str, name: str) -> dict[str, Any]:
        """The operator's options for one backend (empty when none are set)."""
        return dict(self.backend_options.get(stage, {}).get(name, {}))
