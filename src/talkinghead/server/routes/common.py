"""What the route modules share: the server state, the work rate limit, id checks, upload reading."""

from __future__ import annotations

from typing import Any

from fastapi import Request, UploadFile

from ..errors import ApiError, not_found
from ..security import client_key
from ..store import UnknownIdError, check_id

WHAT = {"job": "video job", "avatar": "avatar", "conversation": "conversation"}


def state(request: Request) -> Any:
    """The :class:`~talkinghead.server.app.ServerState` of the app serving ``request``."""
    return request.app.state.talkinghead


def work_limit(request: Request) -> None:
    """Dependency of routes that start work (jobs, turns, avatars): the per-client work rate."""
    s = state(request)
    s.work_limiter.hit(client_key(request.client, request.headers, s.settings.trust_forwarded_for))


def checked_id(kind: str, value: str) -> str:
    """``value`` if it is a well-formed id of ``kind``, else 404 (nothing malformed reaches the store)."""
    try:
        return check_id(kind, value)
    except UnknownIdError:
        raise not_found(WHAT[kind], value) from None


async def read_upload(request: Request, upload: UploadFile | None, what: str) -> bytes | None:
    """The bytes of an uploaded file (None when absent), bounded by the upload limit."""
    if upload is None:
        return None
    limit = state(request).settings.max_upload_bytes
    data = await upload.read(limit + 1)
    await upload.close()
    if len(data) > limit:
        raise ApiError(413, "PayloadTooLarge", f"the {what} is larger than this server's {limit / 1e6:g} MB limit")
    return data


def job_view(request: Request, record: dict[str, Any]) -> dict[str, Any]:
    """A job record with the URLs of its video and captions."""
    out = dict(record)
    out.pop("cancel_requested", None)
    if record.get("status") == "completed":
        out["content_url"] = request.url_for("video_content", video_id=record["id"]).path
        if state(request).store.open_file("job", record["id"], "captions.vtt") is not None:
            out["captions_url"] = request.url_for("video_captions", video_id=record["id"]).path
    return out


def avatar_view(request: Request, record: dict[str, Any]) -> dict[str, Any]:
    out = dict(record)
    path = request.url_for("avatar_portrait", avatar_id=record["id"]).path
    version = int(record.get("version", 1))  # in the URL, so that a changed portrait is fetched anew
    out["portrait_url"] = f"{path}?v={version}"
    out["thumbnail_url"] = f"{path}?thumbnail=true&v={version}"
    return out
