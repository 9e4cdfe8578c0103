"""``create_app``: the FastAPI application — one router per area, the shared state, the web page.

Areas: ``meta`` (health, backends, auth), ``videos`` (render jobs), ``avatars`` (saved avatars),
``conversations`` (REST turns), ``live`` (live sessions over WebRTC or a WebSocket) and ``web``
(the page), all over one :class:`ServerState`.
"""


# no `from __future__ import annotations`: FastAPI reads the annotations of the inner functions
import asyncio
import contextlib
import logging
import time
from typing import Any

from ..cache import ModelCache
from .avatars import AvatarService
from .conversations import ConversationService
from .engine import Engine
from .errors import install_handlers
from .jobs import JobQueue
from .live import LiveService
from .security import SECURITY_HEADERS, BodyLimitMiddleware, RateLimiter, check_token, client_key
from .sessions import SessionRegistry
from .settings import ServerSettings
from .store import LocalStore, Store

log = logging.getLogger(__name__)

__all__ = ["create_app", "ServerState"]


class ServerState:
    """Everything one app shares between requests: settings, store, engine, queue, services, sessions.

    Args:
        settings: the server settings.
        store: where records and files live (default: a :class:`LocalStore` in ``settings.data_dir``).
        cache: the model cache to share with the host application (default: the engine's own).
    """

    def __init__(self, settings: ServerSettings, store: Store | None = None, cache: ModelCache | None = None) -> None:
        self.settings = settings
        self.store = store if store is not None else LocalStore(settings.data_dir)
        self.engine = Engine(settings, cache)
        self.jobs = JobQueue(self.store, workers=settings.job_workers, max_queued=settings.max_queued,
                             ttl=settings.job_ttl)
        self.sessions = SessionRegistry(settings.max_sessions, settings.session_idle)
        self.avatars = AvatarService(self.engine, self.store)
        self.conversations = ConversationService(self.engine, self.store, self.avatars, self.jobs, self.sessions)
        self.work_limiter = RateLimiter(settings.rate_limit, settings.rate_burst)
        self.read_limiter = RateLimiter(settings.read_rate_limit, max(settings.rate_burst, 60))
        self.live = LiveService(self)
        self._last_sweep = 0.0
        self._closed = False

    def sweep(self) -> dict[str, int]:
        """Expire finished jobs, idle conversations, idle sessions and idle live sessions now."""
        self._last_sweep = time.monotonic()
        return {"jobs": self.jobs.sweep(), "conversations": self.conversations.sweep(),
                "sessions": self.sessions.expire(), "live": self.live.registry.expire()}

    def sweep_quietly(self) -> None:
        """:meth:`sweep`, logging instead of raising (for background sweeps)."""
        try:
            self.sweep()
        except Exception as exc:  # the next sweep tries again
            log.warning("expiry sweep failed: %s", exc)

    def sweep_due(self) -> bool:
        """True (once per ``sweep_interval``) when a request should start a background sweep."""
        now = time.monotonic()
        if now - self._last_sweep < self.settings.sweep_interval:
            return False
        self._last_sweep = now
        return True

    def close(self) -> None:
        """Stop the workers, close the sessions (the app's lifespan does this; call it yourself
        when the app is mounted in another app whose lifespan does not reach it)."""
        if self._closed:
            return
        self._closed = True
        self.live.close_all()
        self.jobs.close(wait=False)
        self.sessions.close_all()
        self.engine.close()


def create_app(settings: ServerSettings | None = None, *, store: Store | None = None,
               cache: ModelCache | None = None) -> Any:
    """The talkinghead HTTP API and web app as a FastAPI application.

    Mount it in an existing app with ``parent.mount("/talkinghead", create_app(settings))`` (then
    call ``app.state.talkinghead.close()`` when the parent shuts down), or serve it with uvicorn
    (``talkinghead serve`` does).

    Args:
        settings: limits, token, CORS origins, job concurrency, expiry, default stages
            (default: :class:`ServerSettings` with its defaults).
        store: the record and file store (default: a :class:`LocalStore` under ``settings.data_dir``).
        cache: a model cache to share with the host application.

    Raises:
        MissingDependencyError: FastAPI is not installed (``pip install 'talkinghead[server]'``).
    """
    from ..errors import MissingDependencyError

    try:
        from fastapi import Depends, FastAPI, Request
    except ImportError as exc:
        raise MissingDependencyError("fastapi", "server", "talkinghead serve") from exc
    from . import routes

    settings = settings or ServerSettings()
    state = ServerState(settings, store, cache)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        task = asyncio.create_task(_sweeper(state))
        try:
            yield
        finally:
            task.cancel()
            state.close()

    async def authorised(request: Request) -> None:
        check_token(settings.token, request.headers.get("authorization"), request.cookies.get("talkinghead_token"))
        key = client_key(request.client, request.headers, settings.trust_forwarded_for)
        state.read_limiter.hit(key)
        if state.sweep_due():  # also when mounted in an app whose lifespan does not run ours
            asyncio.get_running_loop().run_in_executor(None, state.sweep_quietly)

    app = FastAPI(
        title="talkinghead",
        version=_version(),
        description="Portrait + text or audio → lip-synced talking-head video; conversations with saved avatars. "
                    "See docs/server.md.",
        lifespan=lifespan,
        docs_url=None,  # the interactive docs load scripts from a CDN; the server works offline
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.talkinghead = state
    install_handlers(app)
    api = [Depends(authorised)]
    app.include_router(routes.meta.public)
    app.include_router(routes.meta.router, dependencies=api)
    app.include_router(routes.meta.auth)
    app.include_router(routes.videos.router, dependencies=api)
    app.include_router(routes.avatars.router, dependencies=api)
    app.include_router(routes.conversations.router, dependencies=api)
    app.include_router(routes.live.router, dependencies=api)
    app.include_router(routes.live.sockets)
    routes.web.mount(app)

    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins), allow_credentials=True,
                           allow_methods=["GET", "POST", "PATCH", "PUT", "DELETE"],
                           allow_headers=["Authorization", "Content-Type", "Range"],
                           expose_headers=["Content-Range", "Accept-Ranges", "Retry-After", "X-Talkinghead-Job"])

    @app.middleware("http")
    async def security_headers(request: Request, call_next):
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_upload_bytes)
    return app


async def _sweeper(state: ServerState) -> None:
    while True:
        await asyncio.sleep(state.settings.sweep_interval)
        await asyncio.get_running_loop().run_in_executor(None, state.sweep_quietly)


def _version() -> str:
    from .. import __version__

    return __version__
