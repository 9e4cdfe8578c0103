"""Live sessions of the server: a saved avatar that listens, answers and idles in real time, over
WebRTC (:mod:`.rtc`) or a WebSocket (:mod:`.wslive`).

:class:`LiveService` builds a :class:`~talkinghead.streaming.LiveSession` from a saved avatar with the
server's shared models — paced to the wall clock at ``live_fps`` with 48 kHz audio — and keeps its
:class:`LiveLink` in the live registry: bounded (no session is dropped to make room; the next one is
refused), closed when its peer goes away, when the user has been silent for ``live_idle`` seconds,
after ``live_max_seconds``, or when the server stops.

A link pulls the session's chunks on its own thread and hands each to its transport (two media
tracks, or fragmented MP4); it turns the session's events into JSON messages for the client and the
client's messages and microphone audio into turns. The messages are the same on both transports:

* client → server: ``{"type": "ask", "text": ...}`` (typed; never read as a file path),
  ``{"type": "interrupt"}``;
* server → client: ``ready``, ``state`` (``idle``, ``listening``, ``speaking``), ``caption``
  (``role`` ``user``/``assistant``), ``turn_started``, ``turn_ended`` (``status``, the ``answer``
  actually spoken, ``metrics``), ``user_speech_started``, ``user_speech_ended``, ``error``
  (``{"type", "message"}`` as in HTTP errors) and ``closed`` (``reason``).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from ..conversation import Conversation
from ..errors import TextError
from ..values import AVChunk
from .errors import ApiError, describe, not_found
from .sessions import SessionRegistry
from .store import UnknownIdError, check_id

log = logging.getLogger(__name__)

__all__ = ["LiveService", "LiveLink", "LIVE_SAMPLE_RATE", "event_message"]

#: Audio rate of live streams (Opus's native rate; 1920 samples per frame at 25 fps).
LIVE_SAMPLE_RATE = 48000
#: Longest JSON message a client may send (characters).
MAX_MESSAGE_CHARS = 16_384
#: Seconds of microphone audio allowed to wait for the voice-activity detector before pieces are dropped.
MAX_AUDIO_BACKLOG_S = 2.0

_STATE = {"speech": "speaking", "idle": "idle", "listening": "listening"}
#: Turn endings whose unplayed speech the session drops (barge-in, deadline, a failed stage): the
#: transport drops what it still holds of it too.
_CUT = ("interrupted", "deadline", "error")
_EVENT_TYPES = {
    "Caption": "caption", "TurnStarted": "turn_started", "TurnEnded": "turn_ended",
    "UserSpeechStarted": "user_speech_started", "UserSpeechEnded": "user_speech_ended",
}


def webrtc_available() -> bool:
    """Whether aiortc is installed (``pip install 'talkinghead[live]'``)."""
    return importlib.util.find_spec("aiortc") is not None


def event_message(event: Any, fps: float) -> dict[str, Any]:
    """A session event as the JSON message clients get (``type`` in snake case, ``time`` in stream seconds)."""
    from ..streaming.events import event_dict

    out = event_dict(event)
    out["type"] = _EVENT_TYPES.get(out["type"], out["type"].lower())
    if out.get("frame") is not None:
        out["time"] = round(out["frame"] / fps, 3)
    return out


def error_message(exc: BaseException) -> dict[str, Any]:
    """An exception as an ``error`` message (the HTTP error shape; never a traceback)."""
    status, type_, message = describe(exc)
    if status >= 500 and not isinstance(exc, ApiError):
        log.warning("live session error: %s: %s", type_, exc)
    return {"type": "error", "error": {"type": type_, "message": message}, "status": status}


class LiveLink:
    """One client's live session: the :class:`~talkinghead.streaming.LiveSession`, the thread that
    pulls its chunks, and the client's message channel.

    A transport attaches with :meth:`attach` (a thread-safe ``send`` for JSON messages and an
    ``on_chunk`` for media), then calls :meth:`start` once the client can receive; it feeds the
    client's messages to :meth:`handle` and its microphone to :meth:`push_audio`. :meth:`close`
    (any thread, idempotent) ends everything and runs the transport's close callbacks.
    """

    kind = "live"

    def __init__(self, service: LiveService, sid: str, transport: str, client: str) -> None:
        self.service, self.id, self.transport, self.client = service, sid, transport, client
        self.settings = service.settings
        self.session: Any = None
        self.avatar_id: str | None = None
        self.conversation_id: str | None = None
        self.created = time.monotonic()
        self.started: float | None = None
        self.last_active = self.created
        self.close_reason: str | None = None
        self.frames = 0
        self.late_frames = 0  # frames made more than a frame after their time (the machine fell behind)
        self.dropped_audio_s = 0.0
        self._lock = threading.Lock()
        self._closing = False
        self._send: Callable[[dict[str, Any]], None] | None = None
        self._on_chunk: Callable[[AVChunk], None] | None = None
        self._on_end: Callable[[], None] | None = None
        self._on_cut: Callable[[int], None] | None = None
        self._outbox: list[dict[str, Any]] = []
        self._on_close: list[Callable[[str], None]] = []
        self._thread: threading.Thread | None = None
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"talkinghead-{sid}")
        self._backlog = 0.0  # seconds of microphone audio waiting for the worker
        self._questions: dict[int, tuple[str, bool]] = {}

    # -- set-up ----------------------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self._closing

    def attach(self, send: Callable[[dict[str, Any]], None], on_chunk: Callable[[AVChunk], None],
               on_end: Callable[[], None] | None = None, on_cut: Callable[[int], None] | None = None) -> None:
        """Connect the transport: ``send`` (thread-safe) gets JSON messages, ``on_chunk`` every chunk
        (on the pump thread), ``on_end`` runs on that thread after the last chunk, and ``on_cut(turn)``
        (thread-safe) when the session drops the rest of a turn's answer (barge-in, deadline, error), for
        media of it the transport still holds."""
        with self._lock:
            self._send, self._on_chunk, self._on_end, self._on_cut = send, on_chunk, on_end, on_cut
            pending, self._outbox = self._outbox, []
        for message in pending:
            send(message)

    def on_close(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(reason)`` when the link closes (the transport releases its side)."""
        self._on_close.append(callback)

    def ready_message(self) -> dict[str, Any]:
        clock = self.session.clock
        return {"type": "ready", "session_id": self.id, "transport": self.transport, "fps": float(clock.fps),
                "sample_rate": clock.sample_rate, "avatar_id": self.avatar_id,
                "conversation_id": self.conversation_id}

    def start(self) -> None:
        """Start pulling chunks (once the client can receive them)."""
        with self._lock:
            if self._thread is not None or self._closing:
                return
            self.started = time.monotonic()
            self._thread = threading.Thread(target=self._pump, name=f"talkinghead-{self.id}", daemon=True)
        self._thread.start()

    # -- to the client ---------------------------------------------------------------------------
    def send(self, message: dict[str, Any]) -> None:
        """Send a JSON message to the client (queued until the transport is attached)."""
        with self._lock:
            send = self._send
            if send is None:
                self._outbox.append(message)
                return
        try:
            send(message)
        except Exception as exc:  # the channel is gone: the link is closing
            log.debug("live %s: cannot send %s: %s", self.id, message.get("type"), exc)

    def on_event(self, event: Any) -> None:
        """The session's events (from its threads) as messages; finished exchanges go to the conversation."""
        fps = float(self.session.clock.fps) if self.session is not None else self.settings.live_fps
        message = event_message(event, fps)
        if message["type"] == "caption" and message.get("role") == "user" and message.get("turn") is not None:
            self._questions[message["turn"]] = (message["text"], self._questions.get(message["turn"], ("", False))[1])
        elif message["type"] == "turn_started":
            self._questions[message["turn"]] = ("", message.get("source") == "audio")
        elif message["type"] == "user_speech_started":
            self.touch()
        elif message["type"] == "turn_ended":
            if message["status"] in _CUT and self._on_cut is not None:
                self._on_cut(message["turn"])
            self._remember(message)
        self.send(message)

    def _remember(self, message: dict[str, Any]) -> None:
        question, spoken = self._questions.pop(message["turn"], ("", False))
        answer = message.get("answer") or ""
        if self.conversation_id and question and answer:
            self._worker.submit(self.service.remember, self, question, answer, spoken, message["status"])

    # -- from the client -------------------------------------------------------------------------
    def touch(self) -> None:
        """The user did something: the idle timer starts again."""
        self.last_active = time.monotonic()
        self.service.registry.get(self.id)

    def receive_text(self, text: Any) -> None:
        """A text message from the client: bounded, parsed as JSON, then :meth:`handle` d."""
        if not isinstance(text, str):
            self.send(error_message(ApiError(400, "BadRequest", "messages are JSON text; binary is not understood")))
        elif len(text) > MAX_MESSAGE_CHARS:
            self.send(error_message(ApiError(413, "PayloadTooLarge", f"messages are at most {MAX_MESSAGE_CHARS} "
                                                                     "characters of JSON")))
        else:
            try:
                parsed = json.loads(text)
            except ValueError:
                self.send(error_message(ApiError(400, "BadRequest", "messages must be JSON objects")))
                return
            self.handle(parsed)

    def handle(self, message: Any) -> None:
        """A JSON message from the client (already parsed); answers problems with ``error`` messages."""
        if self._closing:
            return
        try:
            self._worker.submit(self._handle, message)
        except RuntimeError:  # the worker stopped: the link is closing
            pass

    def _handle(self, message: Any) -> None:
        try:
            if not isinstance(message, dict) or not isinstance(message.get("type"), str):
                raise ApiError(400, "BadRequest", 'a message must be a JSON object with a "type"')
            kind = message["type"]
            if kind == "ask":
                self._ask(message.get("text"))
            elif kind == "interrupt":
                self.touch()
                self.session.interrupt()
            elif kind == "ping":
                self.send({"type": "pong"})
            else:
                raise ApiError(400, "BadRequest", f"unknown message type {kind!r}; send 'ask' or 'interrupt'")
        except Exception as exc:  # one bad message never ends the session
            self.send(error_message(exc))

    def _ask(self, text: Any) -> None:
        if not isinstance(text, str) or not text.strip():
            raise ApiError(400, "BadRequest", 'an "ask" message needs a non-empty "text"')
        limit = self.settings.max_text_chars
        if len(text) > limit:
            raise TextError(f"the question is over {limit} characters")
        self.service.rate(self.client)
        self.touch()
        self.session.ask(text, text_only=True)  # a client's text is never a server-side path

    def push_audio(self, samples: np.ndarray, sample_rate: int) -> None:
        """The client's microphone (mono PCM, float in [-1, 1]); voice activity makes turns and barge-ins."""
        if self._closing:
            return
        seconds = len(samples) / float(sample_rate)
        with self._lock:
            if self._backlog > MAX_AUDIO_BACKLOG_S:  # the machine cannot keep up: drop rather than lag
                self.dropped_audio_s += seconds
                return
            self._backlog += seconds
        try:
            self._worker.submit(self._push_audio, samples, sample_rate, seconds)
        except RuntimeError:
            pass

    def _push_audio(self, samples: np.ndarray, sample_rate: int, seconds: float) -> None:
        with self._lock:
            self._backlog -= seconds
        try:
            self.session.push_user_audio(samples, sample_rate)
        except Exception as exc:
            self.send(error_message(exc))

    # -- the chunk pump --------------------------------------------------------------------------
    def _pump(self) -> None:
        session, on_chunk = self.session, self._on_chunk
        assert session is not None and on_chunk is not None
        state = None
        reason = "ended"
        t0 = f0 = None
        period = 1.0 / float(session.clock.fps)
        try:
            while not self._closing:
                chunk = session.next_chunk()
                if chunk is None:
                    break
                made = time.perf_counter()
                if t0 is None:
                    t0, f0 = made, chunk.first_frame
                elif made - (t0 + (chunk.first_frame - f0) * period) > period:
                    self.late_frames += chunk.n_frames
                kind = _STATE.get(chunk.kind, chunk.kind)
                if kind != state:
                    state = kind
                    self.send({"type": "state", "state": kind, "frame": chunk.first_frame,
                               "time": round(float(chunk.pts), 3), "turn": chunk.turn})
                on_chunk(chunk)
                self.frames += chunk.n_frames
                now = time.monotonic()
                if now - self.last_active > self.settings.live_idle:
                    reason = "idle"
                    break
                if now - (self.started or now) > self.settings.live_max_seconds:
                    reason = "max_duration"
                    break
        except ClientTooSlow as exc:
            reason = "too_slow"
            self.send(error_message(ApiError(503, "ClientTooSlow", str(exc))))
        except Exception as exc:  # a broken stream ends the session, with a message
            log.warning("live %s: stream failed: %s", self.id, exc, exc_info=True)
            reason = "error"
            self.send(error_message(exc))
        if self._on_end is not None:
            try:
                self._on_end()
            except Exception as exc:
                log.debug("live %s: ending the transport's stream failed: %s", self.id, exc)
        self.close(reason)

    # -- lifetime --------------------------------------------------------------------------------
    def close(self, reason: str = "closed") -> None:
        """End the session: tell the client why, stop the session and the transport (any thread)."""
        with self._lock:
            if self._closing:
                return
            self._closing = True
            self.close_reason = reason
        self.send({"type": "closed", "reason": reason})
        if self.session is not None:
            self.session.close()
        self._worker.shutdown(wait=False, cancel_futures=True)
        for callback in self._on_close:
            try:
                callback(reason)
            except Exception as exc:
                log.warning("live %s: closing the transport failed: %s", self.id, exc)
        self.service.registry.forget(self.id, self)
        log.info("live %s (%s) closed: %s after %d frames", self.id, self.transport, reason, self.frames)

    def info(self) -> dict[str, Any]:
        now = time.monotonic()
        return {"id": self.id, "transport": self.transport, "avatar_id": self.avatar_id,
                "conversation_id": self.conversation_id, "frames": self.frames, "late_frames": self.late_frames,
                "seconds": round(now - (self.started or now), 3), "idle_seconds": round(now - self.last_active, 3),
                "closed": self.close_reason}

    def __repr__(self) -> str:
        return f"<LiveLink {self.id} {self.transport} {self.close_reason or 'open'}>"


class ClientTooSlow(Exception):
    """The client does not take the stream as fast as it is made (its link is closed)."""


class LiveService:
    """Opens live links for saved avatars with the server's shared models.

    Args:
        state: the :class:`~talkinghead.server.app.ServerState` (settings, engine, avatars,
            conversations, store, rate limiter).
    """

    def __init__(self, state: Any) -> None:
        self.state = state
        self.settings = state.settings
        self.registry = SessionRegistry(self.settings.max_live_sessions, self.settings.live_idle)

    def describe(self) -> dict[str, Any]:
        """What the page needs to go live: transports, ICE servers, the bound and the use."""
        return {"webrtc": webrtc_available(), "websocket": True, "ice_servers": list(self.settings.ice_servers),
                "max_sessions": self.settings.max_live_sessions, "active": len(self.registry),
                "fps": self.settings.live_fps, "sample_rate": LIVE_SAMPLE_RATE, "sessions": self.sessions()}

    def rate(self, client: str) -> None:
        """A typed turn counts as work against the client's rate limit."""
        self.state.work_limiter.hit(client)

    def open(self, transport: str, client: str) -> LiveLink:
        """A new link, registered (its slot is taken until it closes).

        Raises:
            ApiError: 503 ``NoLLM`` without an LLM; 503 ``TooManySessions`` when ``max_live_sessions`` are open.
        """
        if not self.settings.stages.get("llm"):
            raise ApiError(503, "NoLLM", "this server has no LLM configured, so it cannot hold live conversations; "
                           "the operator can start it with --llm openai --set llm.base_url=...")
        sid = f"live_{secrets.token_hex(10)}"  # not guessable: it is what DELETE /v1/live/{id} takes
        link = LiveLink(self, sid, transport, client)
        if not self.registry.add(sid, link):
            n = self.settings.max_live_sessions
            raise ApiError(503, "TooManySessions",
                           f"this server runs at most {n} live session{'s' * (n != 1)} at once and all are in use; "
                           "try again in a minute, or use the record-and-send mode", {"Retry-After": "30"})
        return link

    def build(self, link: LiveLink, avatar_id: str, conversation_id: str | None = None) -> None:
        """Give ``link`` its session: the saved avatar's voice, persona and animator, the shared models,
        the memory of ``conversation_id`` (blocking: loads models and prepares the portrait once)."""
        s = self.state
        settings = self.settings
        aid = _checked("avatar", avatar_id)
        record = s.avatars.get(aid)
        memory_turns: list[dict[str, Any]] = []
        if conversation_id:
            conversation = s.conversations.get(_checked("conversation", conversation_id))
            if conversation["avatar_id"] != aid:
                raise ApiError(400, "BadRequest", "that conversation belongs to another avatar")
            memory_turns = conversation.get("turns", [])
        spec = s.avatars.spec(record, fps=settings.live_fps)
        avatar = s.engine.avatar(s.avatars.portrait(aid), spec, conversation=True,
                                 system_prompt=record.get("persona") or None, max_size=settings.live_max_size)
        if settings.stages.get("asr"):
            s.engine.with_asr(avatar)
        s.engine.prepare(avatar)
        memory = Conversation(avatar.conversation.system_prompt, avatar.conversation.max_exchanges)
        for turn in memory_turns:
            memory.add(turn["question"], turn["answer"])
        link.avatar_id, link.conversation_id = aid, conversation_id or None
        link.session = avatar.live(
            fps=settings.live_fps, sample_rate=LIVE_SAMPLE_RATE, chunk_frames=1, realtime=True,
            voice=s.engine.voice_profile(spec), turn_timeout=settings.live_turn_timeout, vad=settings.live_vad,
            max_speech_s=settings.live_max_utterance, on_event=link.on_event, memory=memory,
        )
        if link.closed:  # closed while it was being built
            link.session.close()

    def remember(self, link: LiveLink, question: str, answer: str, spoken: bool, status: str) -> None:
        """Add a finished live exchange to the link's conversation (what was spoken, as in REST turns)."""
        try:
            self.state.conversations.add_live_turn(link.conversation_id, link.id, question, answer,
                                                   spoken=spoken, status=status)
        except Exception as exc:  # the conversation may have been deleted meanwhile
            log.info("live %s: could not add the turn to %s: %s", link.id, link.conversation_id, exc)

    def sessions(self) -> list[dict[str, Any]]:
        """The open sessions (for operators): transport, avatar, frames made, late frames, age, idle time."""
        links = [self.registry.peek(k) for k in self.registry.keys()]
        return [link.info() for link in links if isinstance(link, LiveLink)]

    def get(self, sid: str) -> LiveLink | None:
        link = self.registry.get(sid) if isinstance(sid, str) and sid.startswith("live_") else None
        return link if isinstance(link, LiveLink) else None

    def close_all(self) -> None:
        self.registry.close_all()


def _checked(kind: str, value: str) -> str:
    try:
        return check_id(kind, value)
    except UnknownIdError:
        raise not_found(kind, value) from None
