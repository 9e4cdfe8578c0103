"""Live conversations: ``POST /v1/live/offer`` (WebRTC), ``/v1/live/ws`` (the WebSocket fallback),
``GET /v1/live`` (what the page needs to go live) and ``DELETE /v1/live/{id}``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response, WebSocket

from ..errors import ApiError, not_found
from ..live import LIVE_SAMPLE_RATE, webrtc_available
from ..schemas import ErrorBody, LiveAnswer, LiveInfo, LiveOffer
from ..security import client_key
from ..wslive import serve_live_websocket
from .common import checked_id, state, work_limit

router = APIRouter(prefix="/v1/live", tags=["live"],
                   responses={401: {"model": ErrorBody}, 429: {"model": ErrorBody}})
#: The WebSocket route checks the token and the origin itself (HTTP dependencies do not apply to it).
sockets = APIRouter(prefix="/v1/live")


@router.get("", response_model=LiveInfo, summary="Live sessions: transports, ICE servers, use")
async def live_info(request: Request) -> Any:
    s = state(request)
    return {**s.live.describe(), "conversation": bool(s.settings.stages.get("llm"))}


@router.post("/offer", response_model=LiveAnswer, dependencies=[Depends(work_limit)],
             responses={400: {"model": ErrorBody}, 404: {"model": ErrorBody}, 422: {"model": ErrorBody},
                        503: {"model": ErrorBody}},
             summary="Start a live session over WebRTC: SDP offer in, SDP answer out")
async def offer(request: Request, body: LiveOffer) -> Any:
    """Answer a WebRTC offer with a live session of a saved avatar.

    The browser sends its microphone on the audio section and typed questions as JSON on a data
    channel (``{"type": "ask", "text": ...}``); the server sends one audio and one video track on
    one clock, and captions and turn events on the data channel (see docs/server.md). Gather the
    offer's ICE candidates before sending it (no trickle ICE).
    """
    s = state(request)
    if not webrtc_available():
        raise ApiError(503, "MissingDependencyError", "this server cannot do WebRTC (aiortc is not installed: pip "
                       "install 'talkinghead[live]'); use the WebSocket fallback /v1/live/ws")
    avatar_id = checked_id("avatar", body.avatar_id)
    conversation_id = checked_id("conversation", body.conversation_id) if body.conversation_id else None
    from ..rtc import RtcTransport

    link = s.live.open("webrtc", client_key(request.client, request.headers, s.settings.trust_forwarded_for))
    try:
        await s.engine.run(s.live.build, link, avatar_id, conversation_id)
        sdp = await RtcTransport(link, s.settings).answer(body.sdp)
    except BaseException:
        link.close("error")
        raise
    clock = link.session.clock
    return {"sdp": sdp, "type": "answer", "session_id": link.id, "fps": float(clock.fps),
            "sample_rate": LIVE_SAMPLE_RATE}


@router.delete("/{session_id}", status_code=204, summary="End a live session")
async def end_session(request: Request, session_id: str) -> Response:
    s = state(request)
    link = s.live.get(session_id)
    if link is None:
        raise not_found("live session", session_id)
    link.close("ended_by_client")
    return Response(status_code=204)


@sockets.websocket("/ws")
async def live_websocket(websocket: WebSocket) -> None:
    """The WebSocket fallback: fMP4 media and JSON messages (see :mod:`talkinghead.server.wslive`)."""
    await serve_live_websocket(websocket, websocket.app.state.talkinghead)
