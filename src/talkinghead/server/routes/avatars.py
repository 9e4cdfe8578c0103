"""Saved avatars: ``/v1/avatars`` — portrait, voice, persona and animator settings."""

from __future__ import annotations

import json
from typing import Annotated, Any, Optional

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import FileResponse, Response

from ...errors import ConfigError
from ..errors import ApiError, not_found
from ..schemas import Avatar, AvatarList, AvatarUpdate, ErrorBody
from .common import avatar_view, checked_id, read_upload, state, work_limit

router = APIRouter(prefix="/v1/avatars", tags=["avatars"],
                   responses={401: {"model": ErrorBody}, 404: {"model": ErrorBody}, 429: {"model": ErrorBody}})

UPLOAD_ERRORS = {409: {"model": ErrorBody}, 413: {"model": ErrorBody}, 415: {"model": ErrorBody},
                 422: {"model": ErrorBody}}


@router.post("", status_code=201, response_model=Avatar, dependencies=[Depends(work_limit)],
             responses=UPLOAD_ERRORS, summary="Save an avatar")
async def create_avatar(
    request: Request,
    image: Annotated[UploadFile, File(description="portrait (PNG, JPEG or WebP) with one clear face")],
    name: Annotated[Optional[str], Form(max_length=200)] = None,
    persona: Annotated[Optional[str], Form(description="system prompt of its conversations", max_length=4000)] = None,
    tts: Annotated[Optional[str], Form()] = None,
    voice: Annotated[Optional[str], Form()] = None,
    animator: Annotated[Optional[str], Form()] = None,
    animator_options: Annotated[Optional[str], Form(description="JSON object")] = None,
    emotion: Annotated[Optional[str], Form()] = None,
    fps: Annotated[Optional[float], Form()] = None,
) -> Any:
    """Check the portrait (a face must be found) and store it with its settings. The portrait's
    preprocessing is done now and cached, so its first video starts at once."""
    s = state(request)
    data = await read_upload(request, image, "portrait")
    fields: dict[str, Any] = {k: v for k, v in dict(name=name, persona=persona, tts=tts, voice=voice, animator=animator,
                                                    emotion=emotion, fps=fps).items() if v not in (None, "")}
    if animator_options:
        try:
            fields["animator_options"] = json.loads(animator_options)
        except json.JSONDecodeError:
            raise ConfigError("animator_options must be a JSON object") from None
    record = await s.engine.run(s.avatars.create, data or b"", fields)
    return avatar_view(request, record)


@router.get("", response_model=AvatarList, summary="All saved avatars, newest first")
async def list_avatars(request: Request) -> Any:
    s = state(request)
    return {"data": [avatar_view(request, r) for r in s.avatars.list()]}


@router.get("/{avatar_id}", response_model=Avatar, summary="One saved avatar")
async def get_avatar(request: Request, avatar_id: str) -> Any:
    s = state(request)
    return avatar_view(request, s.avatars.get(checked_id("avatar", avatar_id)))


@router.get("/{avatar_id}/portrait", name="avatar_portrait", response_class=FileResponse,
            responses={200: {"content": {"image/png": {}, "image/jpeg": {}}}}, summary="The portrait image")
async def avatar_portrait(request: Request, avatar_id: str, thumbnail: bool = False) -> Any:
    """The stored portrait (PNG), or with ``thumbnail=true`` a small JPEG for galleries."""
    s = state(request)
    aid = checked_id("avatar", avatar_id)
    s.avatars.get(aid)
    name = "thumb.jpg" if thumbnail else "portrait.png"
    path = s.store.open_file("avatar", aid, name)
    if path is None:
        raise not_found("avatar portrait", avatar_id)
    return FileResponse(path, media_type="image/jpeg" if thumbnail else "image/png",
                        headers={"Cache-Control": "private, max-age=86400"})


@router.patch("/{avatar_id}", response_model=Avatar, responses={422: {"model": ErrorBody}},
              summary="Change an avatar's settings")
async def update_avatar(request: Request, avatar_id: str, body: AvatarUpdate) -> Any:
    s = state(request)
    aid = checked_id("avatar", avatar_id)
    fields = body.model_dump(exclude_unset=True)
    record = await s.engine.run(s.avatars.update, aid, fields)
    return avatar_view(request, record)


@router.put("/{avatar_id}/portrait", response_model=Avatar, dependencies=[Depends(work_limit)],
            responses=UPLOAD_ERRORS, summary="Replace an avatar's portrait")
async def replace_portrait(request: Request, avatar_id: str,
                           image: Annotated[UploadFile, File(description="the new portrait")]) -> Any:
    s = state(request)
    aid = checked_id("avatar", avatar_id)
    data = await read_upload(request, image, "portrait")
    if not data:
        raise ApiError(400, "BadRequest", "the portrait upload is empty")
    record = await s.engine.run(s.avatars.replace_portrait, aid, data)
    return avatar_view(request, record)


@router.delete("/{avatar_id}", status_code=204, summary="Delete an avatar")
async def delete_avatar(request: Request, avatar_id: str) -> Response:
    s = state(request)
    await s.engine.run(s.avatars.delete, checked_id("avatar", avatar_id))
    return Response(status_code=204)
