"""Conversations over REST: an id with memory, turns from text or recorded speech, each answered
with text and a video.

The history lives in the store (so any worker can continue a conversation); a warm
:class:`~talkinghead.Avatar` per conversation lives in the session registry and is rebuilt when
the saved avatar changes. One turn runs at a time per conversation; each turn is a job in the
shared queue, so turns and renders share the same bounded workers and models.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from ..conversation import Conversation
from ..values import Audio
from .avatars import AvatarService
from .engine import Engine
from .errors import ApiError, not_found
from .jobs import JobContext, JobQueue
from .render import video_info, write_captions
from .sessions import SessionRegistry
from .store import Store, new_id

__all__ = ["ConversationService", "ConversationSession"]


class ConversationSession:
    """The warm Avatar of one conversation (models belong to the shared cache; nothing to release)."""

    kind = "conversation"

    def __init__(self, avatar: Any, avatar_version: int, voice: Any = None) -> None:
        self.avatar, self.avatar_version, self.voice = avatar, avatar_version, voice
        self.lock = threading.Lock()

    def close(self) -> None:
        self.avatar = None


class ConversationService:
    """Create conversations, run their turns, expire idle ones."""

    def __init__(self, engine: Engine, store: Store, avatars: AvatarService, jobs: JobQueue,
                 sessions: SessionRegistry) -> None:
        self.engine, self.store, self.avatars, self.jobs, self.sessions = engine, store, avatars, jobs, sessions

    def create(self, avatar_id: str) -> dict[str, Any]:
        """A new conversation with a saved avatar.

        Raises:
            ConfigError: the server has no LLM.
            ApiError: 404 for an unknown avatar.
        """
        self.avatars.get(avatar_id)
        if not self.engine.settings.stages.get("llm"):
            raise ApiError(503, "NoLLM", "this server has no LLM configured, so it cannot hold conversations; "
                           "the operator can start it with --llm openai --set llm.base_url=...")
        cid = new_id("conversation")
        now = time.time()
        record = {"id": cid, "object": "conversation", "avatar_id": avatar_id, "created_at": now,
                  "updated_at": now, "expires_at": now + self.engine.settings.conversation_ttl,
                  "busy": None, "turns": []}
        self.store.put("conversation", cid, record)
        return record

    def get(self, cid: str) -> dict[str, Any]:
        record = self.store.get("conversation", cid)
        if record is None:
            raise not_found("conversation", cid)
        return record

    def delete(self, cid: str) -> None:
        self.sessions.drop(cid)
        if not self.store.delete("conversation", cid):
            raise not_found("conversation", cid)

    def start_turn(self, cid: str, *, text: str | None = None, audio: Audio | None = None) -> dict[str, Any]:
        """Queue one turn and return its job; 409 while the previous turn is still running."""
        record = self.get(cid)
        avatar = self.avatars.get(record["avatar_id"])
        spec = self.avatars.spec(avatar)
        marker = f"pending-{time.time():.6f}"

        def claim(r: dict[str, Any]) -> None:
            busy = r.get("busy")
            if busy and self.jobs.get(busy) and self.jobs.get(busy).get("status") in ("queued", "in_progress"):
                raise ApiError(409, "TurnInProgress", "the previous turn of this conversation is still being answered; "
                               "wait for its video, then ask again")
            if busy and busy.startswith("pending-") and time.time() - float(busy[8:]) < 30:
                raise ApiError(409, "TurnInProgress", "a turn of this conversation is being started; wait a moment")
            r["busy"] = marker

        self.store.update("conversation", cid, claim)
        try:
            job = self.jobs.submit(
                "turn", {"input": "audio" if audio is not None else "text", **spec.as_dict()},
                lambda ctx: self._turn(ctx, cid, text, audio), enhanced=spec.enhancer is not None,
                extra={"conversation_id": cid},
            )
        except BaseException:
            self._release(cid, marker)
            raise
        self.store.update("conversation", cid, lambda r: r.update(busy=job["id"]) if r.get("busy") == marker else None)
        return job

    def _release(self, cid: str, owner: str) -> None:
        try:
            self.store.update("conversation", cid, lambda r: r.update(busy=None) if r.get("busy") == owner else None)
        except KeyError:
            pass

    def _turn(self, ctx: JobContext, cid: str, text: str | None, audio: Audio | None) -> dict[str, Any]:
        try:
            record = self.get(cid)
            avatar_record = self.avatars.get(record["avatar_id"])
            version = int(avatar_record.get("version", 1))

            def build() -> ConversationSession:
                spec = self.avatars.spec(avatar_record)
                avatar = self.engine.avatar(self.avatars.portrait(avatar_record["id"]), spec, conversation=True,
                                            system_prompt=avatar_record.get("persona") or None)
                self.engine.prepare(avatar)
                return ConversationSession(avatar, version, self.engine.voice_profile(spec))

            session = self.sessions.get_or_create(cid, build, valid=lambda s: s.avatar_version == version
                                                  and s.avatar is not None)
            with session.lock:
                avatar = session.avatar
                memory = Conversation(avatar.conversation.system_prompt, avatar.conversation.max_exchanges)
                for turn in record.get("turns", []):
                    memory.add(turn["question"], turn["answer"])
                avatar.conversation = memory
                avatar.progress = ctx.progress
                if audio is not None:
                    self.engine.with_asr(avatar)
                try:
                    reply = avatar.ask(
                        text if text is not None else audio, ctx.video_path, voice=session.voice, text_only=text is not None
                    )
                finally:
                    avatar.progress = None
            ctx.queue.store.commit_file("job", ctx.id, "video.mp4")
            name = avatar_record.get("name") or "Avatar"
            write_captions(ctx, [(name, reply.answer)], reply.video.duration)
            turn = {
                "id": ctx.id, "question": reply.question, "answer": reply.answer,
                "spoken": reply.transcript is not None, "created_at": time.time(),
                "timings": {k: round(v, 3) for k, v in reply.timings.items()},
            }
            now = time.time()

            def add(r: dict[str, Any]) -> None:
                r["turns"].append(turn)
                r.update(updated_at=now, expires_at=now + self.engine.settings.conversation_ttl)

            self.store.update("conversation", cid, add)
            return {**video_info(reply.video, ctx), "question": reply.question, "answer": reply.answer,
                    "spoken": turn["spoken"], "timings": turn["timings"]}
        finally:
            self._release(cid, ctx.id)

    def sweep(self, now: float | None = None) -> int:
        """Delete conversations idle past their expiry; returns how many."""
        now = time.time() if now is None else now
        n = 0
        for cid in self.store.ids("conversation"):
            record = self.store.get("conversation", cid)
            if record and (record.get("expires_at") or now + 1) <= now:
                self.sessions.drop(cid)
                n += self.store.delete("conversation", cid)
        return n
