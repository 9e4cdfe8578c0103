"""``talkinghead serve``: the HTTP API and web app on uvicorn."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
from typing import Any, TextIO

from ..errors import ConfigError, MissingDependencyError
from .common import STAGE_FLAGS, parse_settings, typed_config

log = logging.getLogger(__name__)

TOKEN_ENV = "TALKINGHEAD_TOKEN"


def server_settings(args: argparse.Namespace) -> Any:
    """The :class:`~talkinghead.server.ServerSettings` the flags describe."""
    from ..server.settings import DEFAULT_STAGES, ServerSettings, default_data_dir

    stages = dict(DEFAULT_STAGES)
    for stage in STAGE_FLAGS:
        name = getattr(args, stage, None)
        if name is not None:
            stages[stage] = None if name.lower() == "none" else name
    raw = parse_settings(args.set or [])
    if raw.get(""):
        raise ConfigError("--set for serve needs a stage: --set STAGE.key=value (e.g. --set llm.base_url=...)")
    options: dict[str, dict[str, dict[str, Any]]] = {}
    for stage, values in raw.items():
        name = stages.get(stage)
        if name is None:
            raise ConfigError(f"--set {stage}.…: give --{stage} NAME to choose that stage's backend first")
        options.setdefault(stage, {})[name] = typed_config(stage, name, values)
    token = args.token if args.token is not None else os.environ.get(TOKEN_ENV) or None
    ice_servers = []
    for url in args.ice_server or ():
        server: dict[str, Any] = {"urls": url}
        if url.startswith("turn"):
            server.update(username=args.turn_username, credential=args.turn_credential)
        ice_servers.append(server)
    return ServerSettings(
        data_dir=args.data_dir or default_data_dir(),
        token=token,
        cors_origins=tuple(args.cors_origin or ()),
        job_workers=args.jobs,
        max_queued=args.max_queued,
        job_ttl=args.expire,
        max_upload_bytes=int(args.max_upload_mb * 1024 * 1024),
        rate_limit=args.rate_limit,
        trust_forwarded_for=args.trust_forwarded_for,
        stages=stages,
        backend_options=options,
        system_prompt=args.system_prompt,
        max_live_sessions=args.max_live,
        ice_servers=tuple(ice_servers),
        ice_addresses=tuple(args.ice_address) if args.ice_address else None,
    )


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def cmd_serve(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    try:
        import uvicorn
    except ImportError as exc:
        raise MissingDependencyError("uvicorn", "server", "talkinghead serve") from exc
    from ..server import create_app

    settings = server_settings(args)
    if settings.token is None and not is_loopback(args.host):
        err.write(
            f"warning: serving on {args.host} without a token: anyone who can reach this address can use the server; "
            f"pass --token (or set {TOKEN_ENV})\n"
        )
    app = create_app(settings)
    shown = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host
    out.write(f"talkinghead serving on http://{shown}:{args.port}/  (data in {settings.data_dir}; Ctrl-C stops)\n")
    out.flush()
    if args.preload:
        _preload(app, err)
    level = "info" if args.verbose else "warning"
    uvicorn.run(app, host=args.host, port=args.port, log_level=level, access_log=bool(args.verbose))
    return 0


def _preload(app: Any, err: TextIO) -> None:
    """Load the default stages' models now so that the first request does not wait for them."""
    engine = app.state.talkinghead.engine
    for stage in ("tts", "animator", "writer", "asr", "llm"):
        name = engine.default(stage)
        if name:
            try:
                engine.cache.ensure_loaded(engine.backend(stage, name))
            except Exception as exc:  # the server still starts; requests will report the problem
                err.write(f"warning: could not load {stage} backend {name!r}: {exc}\n")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="HTTP API and web app (render jobs, saved avatars, conversations, live sessions)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--token", help=f"require this bearer token for the API (default: ${TOKEN_ENV}, else none)")
    p.add_argument("--data-dir", help="where jobs, videos and avatars are kept (default: the user data folder)")
    p.add_argument("--jobs", type=int, default=1, help="render jobs that run at once (default 1)")
    p.add_argument("--max-queued", type=int, default=16, help="jobs waiting or running at most (default 16)")
    p.add_argument("--expire", type=float, default=3600.0, help="seconds finished videos are kept (default 3600)")
    p.add_argument("--max-upload-mb", type=float, default=25.0, help="largest upload in MB (default 25)")
    p.add_argument("--rate-limit", type=float, default=30.0, help="work requests per minute per client (default 30)")
    p.add_argument("--cors-origin", action="append", metavar="ORIGIN",
                   help="allow this origin to call the API from a browser (repeatable; default: none)")
    p.add_argument("--trust-forwarded-for", action="store_true",
                   help="rate-limit by X-Forwarded-For (only behind your own reverse proxy)")
    for stage in STAGE_FLAGS:
        p.add_argument(f"--{stage}", metavar="NAME", help=f"default {stage} backend ('none' to turn it off)")
    p.add_argument("--set", action="append", metavar="STAGE.KEY=VALUE",
                   help="backend option, repeatable (e.g. --llm openai --set llm.base_url=http://localhost:11434/v1)")
    p.add_argument("--system-prompt", help="persona of avatars that have none")
    p.add_argument("--max-live", type=int, default=1,
                   help="live sessions (WebRTC or WebSocket) at once (default 1, what 2 cores hold; each renders "
                        "25 fps while it lasts)")
    p.add_argument("--ice-server", action="append", metavar="URL",
                   help="STUN/TURN server for WebRTC, e.g. stun:stun.example.com:3478 or turn:turn.example.com:3478 "
                        "(repeatable; default: none, host candidates only)")
    p.add_argument("--turn-username", help="user name for the turn: servers given with --ice-server")
    p.add_argument("--turn-credential", help="credential for the turn: servers given with --ice-server")
    p.add_argument("--ice-address", action="append", metavar="ADDR",
                   help="bind WebRTC host candidates to this address (repeatable; default: every interface but "
                        "loopback; 127.0.0.1 keeps WebRTC on this machine)")
    p.add_argument("--preload", action="store_true", help="load the default models before accepting requests")
    p.set_defaults(func=cmd_serve)
