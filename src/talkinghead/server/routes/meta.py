"""Health, the backends clients may choose, and the token login the web page uses."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from ..schemas import AuthRequest, Backends, ErrorBody
from ..security import TOKEN_COOKIE, check_token
from .common import state, work_limit

public = APIRouter(tags=["meta"])
router = APIRouter(prefix="/v1", tags=["meta"], responses={401: {"model": ErrorBody}, 429: {"model": ErrorBody}})
auth = APIRouter(prefix="/v1", tags=["meta"])


@public.get("/healthz", summary="Liveness (no token needed)")
async def health(request: Request) -> dict:
    s = state(request)
    return {"status": "ok", "jobs_active": s.jobs.active_count(), "sessions": len(s.sessions)}


@router.get("/backends", response_model=Backends, summary="What clients may choose")
async def backends(request: Request) -> dict:
    """Backends per stage (with voices and the animator options clients may set), defaults and limits."""
    s = state(request)
    return await s.engine.run(s.engine.describe)


@auth.post("/auth", status_code=204, dependencies=[Depends(work_limit)],
           responses={401: {"model": ErrorBody}, 429: {"model": ErrorBody}}, summary="Log the page in")
async def login(request: Request, body: AuthRequest, response: Response) -> Response:
    """Check a token and set it as an HttpOnly, same-site cookie, so that the page's media requests
    (``<video src>``, download links) carry it. API clients send ``Authorization: Bearer`` instead."""
    s = state(request)
    check_token(s.settings.token, f"Bearer {body.token}", None)
    response = Response(status_code=204)
    if s.settings.token is not None:
        response.set_cookie(TOKEN_COOKIE, body.token, httponly=True, samesite="strict",
                            secure=request.url.scheme == "https", path=(request.scope.get("root_path") or "") + "/")
    return response
