"""HTTP errors: the library's error hierarchy mapped to status codes, and the one JSON error shape.

Every error response is ``{"error": {"type": ..., "message": ...}}``; ``type`` is the name of the
library exception (``NoFaceError``, ``AudioError``...) or of an HTTP-level error below
(``NotFound``, ``RateLimited``...). Unexpected exceptions are logged with their traceback and
answered with a plain ``InternalError`` — a client never sees a traceback.
"""

from __future__ import annotations

import logging
from typing import Any

from ..errors import (
    BadInputError,
    ConfigError,
    MissingDependencyError,
    ModelLoadError,
    OutputError,
    ServiceError,
    StageError,
    TalkingHeadError,
    WeightsMissingError,
)

log = logging.getLogger(__name__)

__all__ = ["ApiError", "status_for", "error_body", "install_handlers"]


class ApiError(Exception):
    """An error at the HTTP level, with its status, type name and message.

    Args:
        status: HTTP status code.
        type: short CamelCase name clients can switch on (``NotFound``, ``RateLimited``...).
        message: what happened and what to do.
        headers: extra response headers (``Retry-After``...).
    """

    def __init__(self, status: int, type: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.type, self.message = status, type, message
        self.headers = headers or {}


def not_found(what: str, rid: str) -> ApiError:
    return ApiError(404, "NotFound", f"no {what} with id {rid!r}; it may have expired or been deleted")


def status_for(exc: TalkingHeadError) -> int:
    """The HTTP status for a library error.

    Input a client can fix (bad image, no face, silent audio, unknown backend or option) is 422;
    a missing dependency, missing weights or a transient remote failure is 503 (the operator must
    act, or retrying may help); a permanent remote failure is 502; anything else 500.
    """
    if isinstance(exc, OutputError):
        return 500  # the server's own disk, not the client's input
    if isinstance(exc, (BadInputError, ConfigError)):
        return 422
    if isinstance(exc, (MissingDependencyError, WeightsMissingError)):
        return 503
    if isinstance(exc, ServiceError):
        return 503 if exc.transient else 502
    if isinstance(exc, (ModelLoadError, StageError)):
        return 500
    return 500


def error_body(type_: str, message: str) -> dict[str, Any]:
    """The JSON body of every error response."""
    return {"error": {"type": type_, "message": message}}


def describe(exc: BaseException) -> tuple[int, str, str]:
    """(status, type, message) for any exception; internal details are not revealed."""
    if isinstance(exc, ApiError):
        return exc.status, exc.type, exc.message
    if isinstance(exc, TalkingHeadError):
        return status_for(exc), type(exc).__name__, str(exc)
    return 500, "InternalError", (
        "the server failed while handling this request; the operator can find details in its log"
    )


def install_handlers(app: Any) -> None:
    """Answer every error of ``app`` (a FastAPI app) in the JSON error shape."""
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    def respond(status: int, type_: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
        return JSONResponse(error_body(type_, message), status_code=status, headers=headers)

    async def api_error(request, exc: ApiError):
        return respond(exc.status, exc.type, exc.message, exc.headers)

    async def library_error(request, exc: TalkingHeadError):
        status, type_, message = describe(exc)
        if status >= 500:
            log.warning("%s %s: %s: %s", request.method, request.url.path, type_, message)
        headers = {"Retry-After": "5"} if isinstance(exc, ServiceError) and exc.transient else None
        return respond(status, type_, message, headers)

    async def validation_error(request, exc: RequestValidationError):
        parts = []
        for err in exc.errors()[:5]:
            where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path"))
            parts.append(f"{where or 'request'}: {err.get('msg', 'invalid')}")
        return respond(422, "ValidationError", "; ".join(parts) or "the request is invalid")

    async def http_error(request, exc: StarletteHTTPException):
        names = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 405: "MethodNotAllowed",
                 413: "PayloadTooLarge", 415: "UnsupportedMediaType", 416: "RangeNotSatisfiable", 429: "RateLimited"}
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        if exc.status_code == 404 and message == "Not Found":
            message = f"no such path: {request.url.path}"
        return respond(exc.status_code, names.get(exc.status_code, "HTTPError"), message, getattr(exc, "headers", None))

    async def internal_error(request, exc: Exception):
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        status, type_, message = describe(exc)
        return respond(status, type_, message)

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(TalkingHeadError, library_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, internal_error)
