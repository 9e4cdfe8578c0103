"""The WebSocket fallback of live sessions, for networks where WebRTC is blocked.

One WebSocket carries the whole session:

* server → client: **binary** messages are the live stream as fragmented MP4 (H.264 + AAC, one
  init segment, then a fragment per frame; append them to a Media Source Extensions
  ``SourceBuffer`` of the ``mime`` the ``ready`` message names); **text** messages are the JSON
  messages of :mod:`talkinghead.server.live` (``ready``, ``state``, ``caption``, ``turn_ended``...);
* client → server: **text** messages are JSON (``ask``, ``interrupt``); **binary** messages are the
  microphone as 16-bit little-endian mono PCM at ``audio_rate`` Hz (a query parameter, default 16000).

The same turns, captions, barge-in and limits as over WebRTC; only the media path differs (TCP,
so a slow network delays rather than drops — a client that falls more than ``MAX_BACKLOG_S``
behind is closed with ``ClientTooSlow``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from ..values import AVChunk
from .errors import ApiError
from .live import ClientTooSlow, LiveLink, error_message
from .security import TOKEN_COOKIE, check_token, client_key

log = logging.getLogger(__name__)

__all__ = ["serve_live_websocket", "origin_allowed"]

#: Largest microphone message (bytes): one second of 16-bit audio at 32 kHz.
MAX_AUDIO_MESSAGE = 64_000
#: Seconds of stream that may wait for a slow client before it is closed.
MAX_BACKLOG_S = 10.0


def origin_allowed(origin: str | None, host: str | None, allowed: tuple[str, ...]) -> bool:
    """A browser's WebSocket may come from this server's own page or an allowed CORS origin.

    Browsers send cookies with cross-site WebSocket handshakes and WebSockets have no CORS, so
    without this check any site a user visits could open a live session on a local server.
    Clients that are not browsers send no ``Origin`` and pass.
    """
    if origin is None:
        return True
    if origin in allowed:
        return True
    parts = urlsplit(origin)
    return bool(host) and parts.netloc.lower() == str(host).lower()


class WsTransport:
    """The WebSocket side of one live link: fMP4 out, JSON both ways, PCM in."""

    def __init__(self, websocket: Any, link: LiveLink, audio_rate: int) -> None:
        from ..streaming.fmp4 import Fmp4Encoder

        self.ws, self.link, self.audio_rate = websocket, link, audio_rate
        self.loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._pending = bytearray()
        self._queued_frames = 0
        self._lock = threading.Lock()
        # ultrafast: the encoder runs next to the animator on every live session's pump thread
        self.encoder = Fmp4Encoder(self, preset="ultrafast", crf=26, threads=1)
        link.on_close(self._closed)

    # -- media (pump thread) ---------------------------------------------------------------------
    def write(self, data: bytes) -> int:
        """The encoder's output (a file-like sink): gathered, and sent per chunk."""
        self._pending += data
        return len(data)

    def flush(self) -> None:
        return None

    def feed(self, chunk: AVChunk) -> None:
        fps = float(chunk.fps)
        with self._lock:
            if self._queued_frames > MAX_BACKLOG_S * fps:
                raise ClientTooSlow(f"the connection fell more than {MAX_BACKLOG_S:g} s behind the stream; closing it")
            self._queued_frames += chunk.n_frames
        self.encoder.write(chunk)
        data, self._pending = bytes(self._pending), bytearray()
        self.loop.call_soon_threadsafe(self._queue.put_nowait, (data, chunk.n_frames))

    def end(self) -> None:
        self.encoder.abort()

    # -- messages --------------------------------------------------------------------------------
    def send(self, message: dict[str, Any]) -> None:
        """Send a JSON message (thread-safe)."""
        try:
            self.loop.call_soon_threadsafe(self._queue.put_nowait, json.dumps(message))
        except RuntimeError:  # the loop is closed
            pass

    def _closed(self, reason: str) -> None:
        try:
            self.loop.call_soon_threadsafe(self._queue.put_nowait, None)
        except RuntimeError:
            pass

    async def _sender(self) -> None:
        while True:
            item = await self._queue.get()
            if item is None:
                break
            if isinstance(item, str):
                await self.ws.send_text(item)
                continue
            data, frames = item
            with self._lock:
                self._queued_frames -= frames
            if data:
                await self.ws.send_bytes(data)

    async def run(self) -> None:
        """Stream until either side ends the session."""
        self.link.attach(self.send, self.feed, self.end)
        from ..streaming.fmp4 import MSE_MIME

        self.send({**self.link.ready_message(), "mime": MSE_MIME, "audio_rate": self.audio_rate})
        sender = asyncio.create_task(self._sender())
        self.link.start()
        try:
            receiver = asyncio.create_task(self._receiver())
            done, _ = await asyncio.wait({sender, receiver}, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task.exception() is not None and not isinstance(task.exception(), _Gone):
                    log.debug("live %s: websocket task failed: %s", self.link.id, task.exception())
            receiver.cancel()
        finally:
            self.link.close("peer_gone")
            if not sender.done():
                try:
                    await asyncio.wait_for(sender, 5)
                except (asyncio.TimeoutError, Exception):
                    sender.cancel()
            code = 1000 if self.link.close_reason in ("peer_gone", "ended", "closed") else 4000
            try:
                await self.ws.close(code=code)
            except Exception:  # already closed by the client
                pass

    async def _receiver(self) -> None:
        while True:
            message = await self.ws.receive()
            if message["type"] == "websocket.disconnect":
                raise _Gone()
            text, data = message.get("text"), message.get("bytes")
            if text is not None:
                self.link.receive_text(text)
            elif data is not None:
                if len(data) > MAX_AUDIO_MESSAGE or len(data) % 2:
                    self.send(error_message(ApiError(
                        413, "PayloadTooLarge", f"microphone messages are 16-bit PCM of at most {MAX_AUDIO_MESSAGE} "
                        "bytes (send pieces of 20-250 ms)")))
                    continue
                pcm = np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0
                if len(pcm):
                    self.link.push_audio(pcm, self.audio_rate)


class _Gone(Exception):
    pass


async def serve_live_websocket(websocket: Any, state: Any) -> None:
    """Handle ``/v1/live/ws``: check the caller, open a live link, stream until either side ends.

    Query parameters: ``avatar_id`` (required), ``conversation_id`` (continue its memory),
    ``audio_rate`` (the microphone's rate, 8000–48000, default 16000). Problems are reported as an
    ``error`` message, then the socket closes with code ``4000 + HTTP status`` (4401, 4404, 4503...).
    """
    settings = state.settings
    link: LiveLink | None = None
    await websocket.accept()
    try:
        if not origin_allowed(websocket.headers.get("origin"), websocket.headers.get("host"), settings.cors_origins):
            raise ApiError(403, "Forbidden", "live sessions may be opened from this server's own page only "
                           "(or an origin given with --cors-origin)")
        check_token(settings.token, websocket.headers.get("authorization"), websocket.cookies.get(TOKEN_COOKIE))
        client = client_key(websocket.client, websocket.headers, settings.trust_forwarded_for)
        state.work_limiter.hit(client)
        query = websocket.query_params
        avatar_id = query.get("avatar_id")
        if not avatar_id:
            raise ApiError(400, "BadRequest", "give the avatar: /v1/live/ws?avatar_id=av_...")
        try:
            audio_rate = int(query.get("audio_rate", "16000"))
        except ValueError:
            audio_rate = 0
        if not 8000 <= audio_rate <= 48000:
            raise ApiError(400, "BadRequest", "audio_rate must be a whole number of Hz between 8000 and 48000")
        link = state.live.open("websocket", client)
        await state.engine.run(state.live.build, link, avatar_id, query.get("conversation_id") or None)
    except Exception as exc:
        message = error_message(exc)
        if link is not None:
            link.close("error")
        try:
            await websocket.send_text(json.dumps(message))
            await websocket.close(code=4000 + int(message["status"]))
        except Exception:
            pass
        return
    await WsTransport(websocket, link, audio_rate).run()
