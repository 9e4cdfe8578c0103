"""Render jobs: ``POST /v1/videos`` queues a video; poll it, download it (Range), cancel or delete it."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Annotated, Any, Optional

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse

from ...errors import ConfigError, TextError
from ...text import speakable_text
from ..errors import ApiError, error_body, not_found
from ..jobs import ACTIVE
from ..render import render_video, stream_sample_rate, stream_video
from ..schemas import ErrorBody, Job, JobList
from ..uploads import decode_audio, decode_image
from .common import checked_id, job_view, read_upload, state, work_limit

router = APIRouter(prefix="/v1/videos", tags=["videos"],
                   responses={401: {"model": ErrorBody}, 404: {"model": ErrorBody}, 429: {"model": ErrorBody}})


@router.post("", status_code=202, response_model=Job, dependencies=[Depends(work_limit)],
             responses={200: {"content": {"video/mp4": {}},
                              "description": "with stream=true: fragmented MP4 as it is rendered (header "
                                             "X-Talkinghead-Job names the job)"},
                        413: {"model": ErrorBody}, 415: {"model": ErrorBody}, 422: {"model": ErrorBody},
                        503: {"model": ErrorBody}}, summary="Queue a video (or stream it as it is made)")
async def create_video(
    request: Request,
    image: Annotated[Optional[UploadFile], File(description="portrait (PNG, JPEG or WebP); or give avatar_id")] = None,
    avatar_id: Annotated[Optional[str], Form(description="a saved avatar instead of an image")] = None,
    text: Annotated[Optional[str], Form(description="what to say; or upload audio")] = None,
    audio: Annotated[Optional[UploadFile],
                     File(description="speech to lip-sync (WAV, FLAC, OGG, MP3, M4A, WebM)")] = None,
    fps: Annotated[Optional[float], Form(description="frames per second (default 20)")] = None,
    tts: Annotated[Optional[str], Form(description="TTS backend (see GET /v1/backends)")] = None,
    voice: Annotated[Optional[str], Form(description="a voice the TTS backend lists")] = None,
    animator: Annotated[Optional[str], Form()] = None,
    enhancer: Annotated[Optional[str], Form(description="enhancer backend, or 'none'")] = None,
    emotion: Annotated[Optional[str], Form(description="for animators that take an emotion option")] = None,
    animator_options: Annotated[Optional[str],
                                Form(description="JSON object of animator options clients may set")] = None,
    stream: Annotated[bool, Query(description="answer with the video itself, as fragmented MP4 while it is "
                                              "rendered (plays in a <video> through Media Source Extensions)")] = False,
) -> Any:
    """Start a render job: a portrait (``image`` or ``avatar_id``) and what it says (``text`` or ``audio``).

    Answers 202 with the job; poll ``GET /v1/videos/{id}`` until ``status`` is ``completed``, then
    fetch ``content_url``. The job runs to its end even if this client goes away.

    With ``stream=true`` the answer is the video itself: fragmented MP4 (H.264 + AAC, ``Content-Type``
    with its codecs for ``MediaSource.addSourceBuffer``), sent as it is encoded, once the job leaves
    the queue. The job is the same (its id in ``X-Talkinghead-Job``; progress, ``content_url`` once
    completed). Errors found before the first byte are JSON errors as usual; a render that fails later
    ends the stream early and its job says why.
    """
    s = state(request)
    image_bytes = await read_upload(request, image, "portrait")
    audio_bytes = await read_upload(request, audio, "audio")
    if (image_bytes is None) == (not avatar_id):
        raise ApiError(400, "BadRequest", "give exactly one of image (a portrait upload) or avatar_id")
    if (audio_bytes is None) == (text is None or text == ""):
        raise ApiError(400, "BadRequest", "give exactly one of text or audio")
    if text is not None and len(text) > s.settings.max_text_chars:
        raise TextError(f"the text is {len(text)} characters, over this server's {s.settings.max_text_chars} limit; "
                        "split it into several videos")
    options = _json_object(animator_options, "animator_options")
    choices = dict(fps=fps, tts=tts, voice=voice, animator=animator, enhancer=enhancer, emotion=emotion)

    def prepare_inputs():
        if avatar_id:
            aid = checked_id("avatar", avatar_id)
            record = s.avatars.get(aid)
            spec = s.avatars.spec(record, **choices, animator_options=options or None)
            portrait = s.avatars.portrait(aid)
        else:
            spec = s.engine.render_spec(**choices, animator_options=options)
            portrait = decode_image(image_bytes, max_pixels=s.settings.max_image_pixels)
        speech = decode_audio(audio_bytes, max_seconds=s.settings.max_audio_seconds) if audio_bytes else None
        words = speakable_text(text, require_words=True) if text is not None else None
        return spec, portrait, speech, words

    spec, portrait, speech, words = await s.engine.run(prepare_inputs)
    params = {**spec.as_dict(), "input": "text" if words is not None else "audio", "avatar_id": avatar_id or None}
    if words is not None:
        params["text"] = words
    if stream:
        stream_sample_rate(spec.fps)  # refuse an fps no stream can carry before queueing
        params["stream"] = True
    work = stream_video if stream else render_video
    record = s.jobs.submit(
        "render", params,
        lambda ctx: work(s.engine, ctx, portrait, spec, text=words, audio=speech),
        enhanced=spec.enhancer is not None,
    )
    if stream:
        return await _streamed(request, record)
    return job_view(request, record)


#: Seconds between looks at a growing stream file.
_POLL_S = 0.03


async def _streamed(request: Request, record: dict[str, Any]) -> Any:
    """The response of ``stream=true``: wait for the job's first bytes, then send its ``stream.mp4`` as it grows."""
    from ...streaming.fmp4 import MSE_MIME

    s = state(request)
    jid = record["id"]
    deadline = time.monotonic() + s.settings.turn_timeout
    handle = None
    while handle is None:
        job = s.jobs.get(jid) or record
        if job["status"] in ("failed", "cancelled"):
            err = job.get("error") or {"type": "Cancelled", "message": "the job was cancelled", "status": 409}
            body = error_body(err.get("type", "InternalError"), err.get("message", ""))
            return JSONResponse({**body, "job": job_view(request, job)}, status_code=int(err.get("status", 500)))
        handle = _open_stream(s, jid, job["status"])
        if handle is None:
            if time.monotonic() > deadline:  # still queued: the client polls like any other job
                return JSONResponse(job_view(request, job), status_code=202)
            await asyncio.sleep(_POLL_S)

    async def body():
        try:
            while True:
                data = await asyncio.to_thread(handle.read, 1 << 16)
                if data:
                    yield data
                    continue
                job = s.jobs.get(jid) or {}
                if job.get("status") not in ("queued", "in_progress"):
                    rest = await asyncio.to_thread(handle.read)
                    if rest:
                        yield rest
                    return
                await asyncio.sleep(_POLL_S)
        finally:
            handle.close()

    headers = {"X-Talkinghead-Job": jid, "Cache-Control": "no-store",
               "Location": str(request.url_for("get_video", video_id=jid).path)}
    return StreamingResponse(body(), media_type=MSE_MIME, headers=headers)


def _open_stream(s: Any, jid: str, status: str) -> Any:
    """The job's video, open for reading: the growing ``stream.mp4``, or ``video.mp4`` once completed."""
    names = ("video.mp4",) if status == "completed" else ("stream.mp4", "video.mp4")
    for name in names:
        path = s.store.open_file("job", jid, name)
        if path is not None and path.stat().st_size > 0:
            try:
                return open(path, "rb")  # noqa: SIM115 (closed by the response's body)
            except FileNotFoundError:  # renamed to video.mp4 meanwhile
                continue
    return None


def _json_object(raw: str | None, name: str) -> dict[str, Any]:
    if raw is None or raw.strip() == "":
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        raise ConfigError(f"{name} must be a JSON object such as {{\"seed\": 3}}") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{name} must be a JSON object such as {{\"seed\": 3}}")
    return value


@router.get("", response_model=JobList, summary="Recent jobs")
async def list_videos(request: Request, limit: Annotated[int, Query(ge=1, le=200)] = 50) -> Any:
    s = state(request)
    records = [r for r in (s.jobs.get(i) for i in s.store.ids("job")) if r]
    records.sort(key=lambda r: r.get("created_at", 0), reverse=True)
    return {"data": [job_view(request, r) for r in records[:limit]]}


@router.get("/{video_id}", name="get_video", response_model=Job, summary="Status and progress of a job")
async def get_video(request: Request, video_id: str) -> Any:
    return job_view(request, _job(request, video_id))


@router.get("/{video_id}/content", name="video_content", response_class=FileResponse,
            responses={200: {"content": {"video/mp4": {}}}, 206: {"description": "a byte range"},
                       409: {"model": ErrorBody}, 416: {"model": ErrorBody}}, summary="The video (Range requests)")
async def video_content(request: Request, video_id: str, download: bool = False) -> Any:
    """The mp4 of a completed job. Supports ``Range: bytes=...`` (206 Partial Content) for seeking."""
    s = state(request)
    record = _job(request, video_id)
    if record["status"] != "completed":
        raise ApiError(409, "NotReady",
                       f"the video is {record['status']}, not completed; poll GET /v1/videos/{video_id}")
    path = s.store.open_file("job", video_id, "video.mp4")
    if path is None:
        raise not_found("video file", video_id)
    filename = f"talkinghead-{video_id}.mp4"
    return FileResponse(path, media_type="video/mp4", filename=filename if download else None,
                        content_disposition_type="attachment" if download else "inline")


@router.get("/{video_id}/captions", name="video_captions", responses={200: {"content": {"text/vtt": {}}}},
            summary="WebVTT captions of the spoken text")
async def video_captions(request: Request, video_id: str) -> Any:
    s = state(request)
    _job(request, video_id)
    path = s.store.open_file("job", video_id, "captions.vtt")
    if path is None:
        raise not_found("captions of video", video_id)
    return Response(path.read_bytes(), media_type="text/vtt; charset=utf-8")


@router.delete("/{video_id}", responses={200: {"model": Job}, 204: {"description": "deleted"}},
               summary="Cancel a running job, or delete a finished one")
async def delete_video(request: Request, video_id: str) -> Any:
    """A queued or running job is cancelled (200 with its record; its partial video is discarded);
    a finished one is deleted with its video (204)."""
    s = state(request)
    record = _job(request, video_id)
    if record["status"] in ACTIVE:
        record = s.jobs.cancel(video_id) or record
        return JSONResponse(job_view(request, record))
    s.jobs.delete(video_id)
    return Response(status_code=204)


def _job(request: Request, video_id: str) -> dict[str, Any]:
    record = state(request).jobs.get(checked_id("job", video_id))
    if record is None:
        raise not_found("video job", video_id)
    return record
