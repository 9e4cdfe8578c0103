"""Conversations over REST: ``/v1/conversations`` — a turn from text or recorded speech is
answered with text and a video (captions of both sides come with it)."""

from __future__ import annotations

from typing import Annotated, Any, Optional

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import JSONResponse, Response

from ...errors import TextError
from ...text import speakable_text
from ..errors import ApiError, error_body
from ..schemas import Conversation, ErrorBody, Job, NewConversation
from ..uploads import decode_audio
from .common import checked_id, job_view, read_upload, state, work_limit

router = APIRouter(prefix="/v1/conversations", tags=["conversations"],
                   responses={401: {"model": ErrorBody}, 404: {"model": ErrorBody}, 429: {"model": ErrorBody}})


@router.post("", status_code=201, response_model=Conversation, dependencies=[Depends(work_limit)],
             responses={503: {"model": ErrorBody}}, summary="Start a conversation with a saved avatar")
async def create_conversation(request: Request, body: NewConversation) -> Any:
    s = state(request)
    return s.conversations.create(checked_id("avatar", body.avatar_id))


@router.get("/{conversation_id}", response_model=Conversation, summary="A conversation and its turns")
async def get_conversation(request: Request, conversation_id: str) -> Any:
    s = state(request)
    return s.conversations.get(checked_id("conversation", conversation_id))


@router.delete("/{conversation_id}", status_code=204, summary="Forget a conversation")
async def delete_conversation(request: Request, conversation_id: str) -> Response:
    s = state(request)
    s.conversations.delete(checked_id("conversation", conversation_id))
    return Response(status_code=204)


@router.post("/{conversation_id}/turns", response_model=Job, dependencies=[Depends(work_limit)],
             responses={202: {"model": Job, "description": "still being answered: poll the job"},
                        409: {"model": ErrorBody}, 413: {"model": ErrorBody}, 415: {"model": ErrorBody},
                        422: {"model": ErrorBody}, 503: {"model": ErrorBody}},
             summary="Ask: text or recorded speech in, answer text and video out")
async def add_turn(
    request: Request,
    conversation_id: str,
    text: Annotated[Optional[str], Form(description="the question as text")] = None,
    audio: Annotated[Optional[UploadFile], File(description="the question as speech (a MediaRecorder WebM/Opus "
                                                            "recording, WAV, OGG, MP3...)")] = None,
    wait: Annotated[bool, Query(description="wait for the answer (up to the server's turn timeout)")] = True,
) -> Any:
    """One turn. With ``wait`` (the default) the response comes when the video is made: the job,
    completed, with ``result.question`` (the transcript for speech), ``result.answer`` and
    ``content_url``/``captions_url``. A failed turn answers with the error's status and
    ``{"error": ..., "job": ...}``. Without ``wait``, or past the timeout, it answers 202 with the job to poll.
    """
    s = state(request)
    cid = checked_id("conversation", conversation_id)
    s.conversations.get(cid)
    data = await read_upload(request, audio, "recording")
    if (data is None) == (not text):
        raise ApiError(400, "BadRequest", "give exactly one of text or audio")
    if text is not None and len(text) > s.settings.max_text_chars:
        raise TextError(f"the question is over {s.settings.max_text_chars} characters")

    def inputs():
        if data is not None:
            return None, decode_audio(data, max_seconds=s.settings.max_audio_seconds)
        return speakable_text(text, require_words=True), None

    question, speech = await s.engine.run(inputs)
    job = await s.engine.run(s.conversations.start_turn, cid, text=question, audio=speech)
    if not wait:
        return JSONResponse(job_view(request, job), status_code=202)
    record = await s.jobs.wait(job["id"], s.settings.turn_timeout) or job
    if record["status"] == "failed":
        err = record.get("error") or {}
        body = error_body(err.get("type", "InternalError"), err.get("message", "the turn failed"))
        return JSONResponse({**body, "job": job_view(request, record)}, status_code=int(err.get("status", 500)))
    return JSONResponse(job_view(request, record), status_code=200 if record["status"] == "completed" else 202)
