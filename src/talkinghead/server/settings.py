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
        max_live_sessions: live sessions (WebRTC or WebSocket) at once; each renders and encodes 25
            frames a second for as long as it lasts (1 on 2 CPU cores: a second session there made
            a fifth of its frames late, docs/performance/live.md; raise it on bigger machines). More are refused with 503
            ``TooManySessions``.
        live_idle: seconds a live session may go without the user speaking or typing before it is closed.
        live_max_seconds: longest a live session may last.
        live_connect_timeout: seconds a WebRTC peer has to connect after its offer was answered.
        live_fps: frame rate of live video (25: the rate of LiveKit, Pipecat and most real-time peers).
        live_max_size: live video is rendered from the portrait downscaled to this long side.
        live_vad: voice-activity detector of live sessions: ``"silero"`` (bundled with
            faster-whisper) or ``"energy"`` (a loudness gate, no model).
        live_max_utterance: seconds one spoken turn may last; a longer one ends there and is answered.
        live_turn_timeout: seconds a live turn may take to produce its whole answer.
        ice_servers: STUN/TURN servers for WebRTC, given to the server's peer connections and to
            the page's: ``({"urls": "turn:turn.example.com:3478", "username": "u", "credential": "p"},)``.
            Empty (the default): host candidates only, which works when the browser can reach the
            server's address directly (same machine, same network).
        ice_addresses: addresses the server's WebRTC host candidates bind to (default: every
            interface but loopback, as aiortc does); ``("127.0.0.1",)`` keeps WebRTC on this machine.
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
    max_live_sessions: int = 1
    live_idle: float = 300.0
    live_max_seconds: float = 3600.0
    live_connect_timeout: float = 30.0
    live_fps: float = 25.0
    live_max_size: int = 512
    live_vad: str = "silero"
    live_max_utterance: float = 30.0
    live_turn_timeout: float = 30.0
    ice_servers: tuple[Mapping[str, Any], ...] = ()
    ice_addresses: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "data_dir", Path(os.fspath(self.data_dir)).expanduser())
        object.__setattr__(self, "cors_origins", tuple(self.cors_origins))
        object.__setattr__(self, "stages", {**DEFAULT_STAGES, **dict(self.stages)})
        positive = (
            "job_workers", "max_queued", "job_ttl", "conversation_ttl", "sweep_interval", "request_workers",
            "max_upload_bytes", "max_image_pixels", "max_audio_seconds", "max_text_chars", "max_fps",
            "max_avatars", "max_portrait_size", "rate_limit", "rate_burst", "read_rate_limit", "turn_timeout",
            "max_portraits", "max_sessions", "session_idle", "max_live_sessions", "live_idle", "live_max_seconds",
            "live_connect_timeout", "live_fps", "live_max_size", "live_max_utterance", "live_turn_timeout",
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
        if self.live_vad not in ("silero", "energy"):
            raise ConfigError(f"live_vad must be 'silero' or 'energy', got {self.live_vad!r}")
        if self.live_fps > 60:
            raise ConfigError(f"live_fps must be at most 60, got {self.live_fps}")
        object.__setattr__(self, "ice_servers", tuple(_ice_server(s) for s in self.ice_servers))
        if self.ice_addresses is not None:
            object.__setattr__(self, "ice_addresses", tuple(_ip(a) for a in self.ice_addresses))
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


def _ice_server(server: Any) -> dict[str, Any]:
    """One STUN/TURN server as the WebRTC APIs take it: ``urls`` plus, for TURN, ``username`` and ``credential``."""
    if isinstance(server, str):
        server = {"urls": server}
    if not isinstance(server, Mapping):
        raise ConfigError(f"an ICE server must be a URL or a mapping with 'urls', got {server!r}")
    unknown = set(server) - {"urls", "username", "credential"}
    if unknown:
        raise ConfigError(f"unknown ICE server field(s): {', '.join(sorted(unknown))}; use urls, username, credential")
    urls = server.get("urls")
    urls = [urls] if isinstance(urls, str) else list(urls or ())
    if not urls or not all(isinstance(u, str) and u.split(":", 1)[0] in ("stun", "turn", "turns") for u in urls):
        raise ConfigError(f"ICE server urls must start with stun:, turn: or turns:, got {server.get('urls')!r}")
    out: dict[str, Any] = {"urls": urls}
    for key in ("username", "credential"):
        if server.get(key) is not None:
            out[key] = str(server[key])
    if any(u.startswith("turn") for u in urls) and not ("username" in out and "credential" in out):
        raise ConfigError("a TURN server needs a username and a credential")
    return out


def _ip(address: Any) -> str:
    import ipaddress

    try:
        return str(ipaddress.ip_address(str(address)))
    except ValueError:
        raise ConfigError(f"ice_addresses must be IP addresses such as 127.0.0.1, got {address!r}") from None
