"""Access control and abuse limits: the optional bearer token, per-client rate limits, the
request-size cap and the security headers of every response.
"""

from __future__ import annotations

import hmac
import math
import threading
import time
from collections import OrderedDict
from typing import Any

from .errors import ApiError, error_body

__all__ = ["TOKEN_COOKIE", "check_token", "RateLimiter", "BodyLimitMiddleware", "client_key", "SECURITY_HEADERS"]

#: Cookie set by ``POST /v1/auth`` so that the page's ``<video src>`` requests carry the token too.
TOKEN_COOKIE = "talkinghead_token"

#: Added to every response. The page loads only its own scripts, styles and media.
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; "
        "connect-src 'self'; style-src 'self'; script-src 'self'; object-src 'none'; "
        "base-uri 'none'; frame-ancestors 'none'"
    ),
}


def check_token(expected: str | None, authorization: str | None, cookie: str | None) -> None:
    """Raise 401 unless the ``Authorization: Bearer`` header or the cookie holds ``expected``.

    Comparison is constant-time. With no ``expected`` token every request passes.
    """
    if expected is None:
        return
    given = None
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer":
            given = value.strip()
    if given is None and cookie:
        given = cookie
    if given is None or not hmac.compare_digest(given.encode(), expected.encode()):
        raise ApiError(
            401,
            "Unauthorized",
            "this server needs a token: send 'Authorization: Bearer <token>' (the page asks for it once)",
            {"WWW-Authenticate": 'Bearer realm="talkinghead"'},
        )


def client_key(scope_client: Any, headers: Any, trust_forwarded_for: bool) -> str:
    """The address rate limits are counted by (``X-Forwarded-For``'s first hop only when trusted)."""
    if trust_forwarded_for:
        forwarded = headers.get("x-forwarded-for")
        if forwarded:
            return forwarded.split(",")[0].strip()
    return scope_client.host if scope_client else "unknown"


class RateLimiter:
    """A token bucket per client: ``per_minute`` requests on average, ``burst`` at once.

    Thread-safe; keeps at most ``max_clients`` buckets (the least recently seen are dropped).
    """

    def __init__(self, per_minute: float, burst: int, *, max_clients: int = 10_000, clock=time.monotonic) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(burst)
        self.max_clients = max_clients
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def hit(self, key: str) -> None:
        """Take one token for ``key`` or raise 429 with ``Retry-After``."""
        now = self.clock()
        with self._lock:
            tokens, last = self._buckets.pop(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens < 1.0:
                self._buckets[key] = (tokens, now)
                wait = math.ceil((1.0 - tokens) / self.rate) if self.rate > 0 else 60
                raise ApiError(
                    429, "RateLimited", f"too many requests; try again in {wait} s", {"Retry-After": str(wait)}
                )
            self._buckets[key] = (tokens - 1.0, now)
            while len(self._buckets) > self.max_clients:
                self._buckets.popitem(last=False)


class BodyLimitMiddleware:
    """Refuse request bodies over ``max_bytes`` with 413 — from ``Content-Length`` before reading,
    and by counting while a body without a declared length arrives — so an oversize upload is never
    spooled to disk or parsed.
    """

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        message = (
            f"the request is larger than this server's {self.max_bytes / 1e6:g} MB upload limit; "
            "send a smaller file"
        )
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    return await _json(send, 400, "BadRequest", "invalid Content-Length header")
                if declared > self.max_bytes:
                    return await _json(send, 413, "PayloadTooLarge", message)
        received = 0
        overflow = False

        async def counting_receive():
            nonlocal received, overflow
            msg = await receive()
            if msg["type"] == "http.request":
                received += len(msg.get("body", b""))
                if received > self.max_bytes:
                    overflow = True
                    raise _TooLarge()
            return msg

        async def guarded_send(msg):
            if not overflow:  # once over the limit, whatever the app answers is replaced by 413
                await send(msg)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except _TooLarge:
            pass
        except Exception:
            if not overflow:
                raise
        if overflow:
            await _json(send, 413, "PayloadTooLarge", message)


class _TooLarge(Exception):
    pass


async def _json(send, status: int, type_: str, message: str) -> None:
    import json

    body = json.dumps(error_body(type_, message)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                        (b"connection", b"close")],
        }
    )
    await send({"type": "http.response.body", "body": body})
