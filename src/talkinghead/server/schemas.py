"""Response bodies of the HTTP API, as pydantic models (they make the OpenAPI schema)."""

from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ErrorBody", "Job", "Avatar", "Conversation", "AvatarList", "JobList", "Backends", "AvatarUpdate",
           "NewConversation", "AuthRequest", "LiveOffer", "LiveAnswer", "LiveInfo"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow")


class ErrorDetail(BaseModel):
    type: str = Field(description="the error's name: a library error (NoFaceError, AudioError...) or an HTTP one "
                                  "(NotFound, Unauthorized, RateLimited, PayloadTooLarge, QueueFull...)")
    message: str = Field(description="what happened and what to do")


class ErrorBody(BaseModel):
    """Every error response."""

    error: ErrorDetail


class JobError(_Model):
    type: str
    message: str
    status: int = Field(500, description="the HTTP status this error maps to")


class VideoResult(_Model):
    width: int
    height: int
    fps: float
    frames: int
    duration: float = Field(description="seconds")
    has_audio: bool
    bytes: int
    question: Optional[str] = Field(None, description="conversation turns: the (transcribed) question")
    answer: Optional[str] = Field(None, description="conversation turns: the answer spoken in the video")


class Job(_Model):
    """A render job (or a conversation turn) and its video."""

    id: str
    object: Literal["video"] = "video"
    kind: Literal["render", "turn"]
    status: Literal["queued", "in_progress", "completed", "failed", "cancelled"]
    progress: float = Field(description="0 to 1")
    stage: Optional[str] = Field(None, description="what runs now: tts, animate, enhance...")
    created_at: float
    started_at: Optional[float] = None
    finished_at: Optional[float] = None
    expires_at: Optional[float] = Field(None, description="when the finished job and its video are deleted")
    params: dict[str, Any] = {}
    result: Optional[VideoResult] = None
    error: Optional[JobError] = None
    conversation_id: Optional[str] = None
    content_url: Optional[str] = Field(None, description="the mp4, once completed (supports Range requests)")
    captions_url: Optional[str] = Field(None, description="WebVTT captions, when the video has a text")


class JobList(BaseModel):
    data: list[Job]


class Avatar(_Model):
    """A saved avatar: portrait, voice, persona and animator settings."""

    id: str
    object: Literal["avatar"] = "avatar"
    name: str
    persona: str = ""
    tts: Optional[str] = None
    voice: Optional[str] = None
    animator: Optional[str] = None
    animator_options: dict[str, Any] = {}
    emotion: Optional[str] = None
    fps: Optional[float] = None
    portrait: dict[str, int]
    version: int
    created_at: float
    updated_at: float
    portrait_url: Optional[str] = None
    thumbnail_url: Optional[str] = None


class AvatarList(BaseModel):
    data: list[Avatar]


class AvatarUpdate(BaseModel):
    """Fields of a saved avatar to change (absent fields keep their value)."""

    model_config = ConfigDict(extra="forbid")
    name: Optional[str] = None
    persona: Optional[str] = None
    tts: Optional[str] = None
    voice: Optional[str] = None
    animator: Optional[str] = None
    animator_options: Optional[dict[str, Any]] = None
    emotion: Optional[str] = None
    fps: Optional[float] = None


class Turn(_Model):
    id: str = Field(description="the job of this turn: its video is /v1/videos/{id}/content while it lasts "
                                "(live turns have no video)")
    question: str
    answer: str = Field(description="what was spoken (for an interrupted live turn, the sentences heard)")
    spoken: bool = Field(description="the question was speech (transcribed by the server)")
    created_at: float
    live: bool = Field(False, description="asked in a live session (WebRTC or WebSocket)")
    status: Optional[str] = Field(None, description="live turns: done or interrupted")


class Conversation(_Model):
    id: str
    object: Literal["conversation"] = "conversation"
    avatar_id: str
    created_at: float
    updated_at: float
    expires_at: float
    busy: Optional[str] = Field(None, description="the job of the turn being answered, if any")
    turns: list[Turn]


class NewConversation(BaseModel):
    model_config = ConfigDict(extra="forbid")
    avatar_id: str


class AuthRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token: str = Field(max_length=1000)


class Backends(_Model):
    """What clients may choose: backends per stage, voices, animator options, defaults and limits."""

    defaults: dict[str, Optional[str]]
    stages: dict[str, list[dict[str, Any]]]
    conversation: bool
    limits: dict[str, Any]


class LiveOffer(BaseModel):
    """A WebRTC offer for a live session with a saved avatar."""

    model_config = ConfigDict(extra="forbid")
    sdp: str = Field(max_length=100_000, description="the browser's SDP offer (gather candidates first: no trickle "
                                                     "ICE); an audio section (the avatar's voice, and the microphone "
                                                     "if sendrecv), a video section and a data channel")
    type: Literal["offer"] = "offer"
    avatar_id: str
    conversation_id: Optional[str] = Field(None, description="continue this conversation's memory; live turns are "
                                                             "added to it")


class LiveAnswer(_Model):
    """The server's SDP answer; the session starts streaming when the peer connects."""

    sdp: str
    type: Literal["answer"] = "answer"
    session_id: str = Field(description="DELETE /v1/live/{session_id} ends it")
    fps: float
    sample_rate: int


class LiveInfo(_Model):
    """Whether and how this server holds live sessions."""

    webrtc: bool = Field(description="WebRTC is available (aiortc installed)")
    websocket: bool
    ice_servers: list[dict[str, Any]] = Field(description="STUN/TURN servers for the page's RTCPeerConnection")
    max_sessions: int
    active: int
    fps: float
    sample_rate: int
    conversation: bool = Field(description="the server has an LLM (live sessions need one)")
    sessions: list[dict[str, Any]] = Field([], description="the open sessions: id, transport, avatar_id, frames, "
                                                           "late_frames (made after their time), seconds, idle_seconds")
