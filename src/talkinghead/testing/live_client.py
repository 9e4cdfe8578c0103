"""A WebRTC client for talkinghead's live sessions, with aiortc: what a browser does, from Python —
for tests, benchmarks, and apps that talk to a live avatar from a program.

>>> async with RtcLiveClient(server.url, avatar_id) as client:         # doctest: +SKIP
...     client.ask("How are you?")
...     await client.wait_for(lambda m: m["type"] == "turn_ended")
...     print(len(client.video), client.audio_seconds)

It offers one audio section (the avatar's voice down; its microphone up when ``microphone``), one
video section (down) and the ``talkinghead`` data channel, gathering host candidates on
``addresses`` only (default loopback). Received frames are kept as (RTP pts, arrival time, value),
where ``value`` is what ``measure`` returns for the frame's RGB pixels (default: nothing is kept).
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import Any

import numpy as np

__all__ = ["RtcLiveClient", "microphone_track"]

#: Samples per 20 ms frame of 48 kHz audio.
_FRAME = 960
_RATE = 48000


def microphone_track() -> Any:
    """An aiortc audio track that plays what its ``say(samples)`` queued (48 kHz mono float) and
    silence otherwise, paced in real time — a scripted microphone."""
    return _microphone_class()()


@functools.lru_cache(maxsize=None)
def _microphone_class() -> type:
    from aiortc import MediaStreamTrack

    class MicrophoneTrack(MediaStreamTrack):
        kind = "audio"

        def __init__(self) -> None:
            super().__init__()
            self.buffer = np.zeros(0, np.float32)
            self.sent = 0
            self._t0: float | None = None

        def say(self, samples: np.ndarray) -> None:
            self.buffer = np.concatenate([self.buffer, np.asarray(samples, np.float32).reshape(-1)])

        async def recv(self) -> Any:
            import av

            if self._t0 is None:
                self._t0 = time.monotonic()
            wait = self._t0 + self.sent / _RATE - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            block = np.zeros(_FRAME, np.float32)
            take = min(_FRAME, len(self.buffer))
            block[:take], self.buffer = self.buffer[:take], self.buffer[take:]
            frame = av.AudioFrame.from_ndarray((np.clip(block, -1, 1) * 32767).astype(np.int16)[None],
                                               format="s16", layout="mono")
            frame.sample_rate = _RATE
            frame.pts = self.sent
            frame.time_base = Fraction(1, _RATE)
            self.sent += _FRAME
            return frame

    return MicrophoneTrack


class RtcLiveClient:
    """One live session over WebRTC, driven from Python.

    Args:
        url: the server's base URL (``http://127.0.0.1:8000``).
        avatar_id: the saved avatar to talk to.
        token: the server's bearer token, if it has one.
        microphone: send a scripted microphone (:func:`microphone_track`; ``client.microphone.say(samples)``).
        addresses: host candidate addresses (default loopback only).
        measure: called with each received video frame (RGB array); its result is kept in ``video``.
        conversation_id: continue this conversation.
    """

    def __init__(self, url: str, avatar_id: str, *, token: str | None = None, microphone: bool = False,
                 addresses: Sequence[str] = ("127.0.0.1",), measure: Callable[[np.ndarray], Any] | None = None,
                 conversation_id: str | None = None) -> None:
        self.url, self.avatar_id, self.token = url.rstrip("/"), avatar_id, token
        self.addresses, self.measure, self.conversation_id = tuple(addresses), measure, conversation_id
        self.microphone = microphone_track() if microphone else None
        self.pc: Any = None
        self.channel: Any = None
        self.session_id: str | None = None
        self.answer: dict[str, Any] = {}
        self.messages: list[dict[str, Any]] = []
        self.message_times: list[float] = []
        self.video: list[tuple[int, float, Any]] = []
        self.audio: list[tuple[int, float, np.ndarray]] = []
        self._tasks: list[asyncio.Task[Any]] = []
        self._changed = asyncio.Event()

    async def start(self, timeout: float = 60.0) -> RtcLiveClient:
        """Offer, get the answer, connect, and wait for the session's ``ready`` message.

        Raises:
            httpx.HTTPStatusError: the server refused the offer (its JSON error is in ``response``).
            TimeoutError: the connection did not come up within ``timeout`` seconds.
        """
        import httpx
        from aiortc import RTCPeerConnection, RTCSessionDescription

        from ..server.rtc import ice_configuration, restrict_host_candidates

        pc = self.pc = RTCPeerConnection(ice_configuration())
        if self.microphone is not None:
            pc.addTransceiver(self.microphone, direction="sendrecv")
        else:
            pc.addTransceiver("audio", direction="recvonly")
        pc.addTransceiver("video", direction="recvonly")
        self.channel = pc.createDataChannel("talkinghead")
        self.channel.on("message", self._on_message)
        pc.on("track", lambda track: self._tasks.append(asyncio.ensure_future(self._consume(track))))
        restrict_host_candidates(pc, self.addresses)
        await pc.setLocalDescription(await pc.createOffer())
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        body = {"sdp": pc.localDescription.sdp, "type": "offer", "avatar_id": self.avatar_id}
        if self.conversation_id:
            body["conversation_id"] = self.conversation_id
        async with httpx.AsyncClient(timeout=timeout) as http:
            r = await http.post(f"{self.url}/v1/live/offer", json=body, headers=headers)
        if r.status_code != 200:
            await pc.close()
            r.raise_for_status()
        self.answer = r.json()
        self.session_id = self.answer["session_id"]
        await pc.setRemoteDescription(RTCSessionDescription(self.answer["sdp"], "answer"))
        await self.wait_for(lambda m: m["type"] == "ready", timeout)
        return self

    # -- receiving -------------------------------------------------------------------------------
    def _on_message(self, text: str) -> None:
        self.messages.append(json.loads(text))
        self.message_times.append(time.monotonic())
        self._changed.set()

    async def _consume(self, track: Any) -> None:
        from aiortc.mediastreams import MediaStreamError

        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            now = time.monotonic()
            if track.kind == "video":
                value = self.measure(frame.to_ndarray(format="rgb24")) if self.measure else None
                self.video.append((frame.pts, now, value))
            else:
                channels = len(frame.layout.channels)
                pcm = frame.to_ndarray().reshape(-1, channels).mean(axis=1).astype(np.int16)
                self.audio.append((frame.pts, now, pcm))
            self._changed.set()

    @property
    def audio_seconds(self) -> float:
        return sum(len(a[2]) for a in self.audio) / _RATE

    def audio_samples(self) -> np.ndarray:
        """The received voice as float samples at 48 kHz, placed by their pts (gaps are silence)."""
        if not self.audio:
            return np.zeros(0, np.float32)
        end = max(p + len(a) for p, _, a in self.audio)
        out = np.zeros(end, np.float32)
        for pts, _, pcm in self.audio:
            out[pts:pts + len(pcm)] = pcm / 32768.0
        return out

    # -- sending ---------------------------------------------------------------------------------
    def send(self, message: dict[str, Any]) -> None:
        self.channel.send(json.dumps(message))

    def ask(self, text: str) -> None:
        """Type a question (a JSON ``ask`` message on the data channel)."""
        self.send({"type": "ask", "text": text})

    async def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 30.0,
                       *, after: int = 0) -> dict[str, Any]:
        """The first message (from index ``after``) for which ``predicate`` holds, waiting up to ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while True:
            for message in self.messages[after:]:
                if predicate(message):
                    return message
            left = deadline - time.monotonic()
            if left <= 0:
                kinds = [m.get("type") for m in self.messages[-20:]]
                raise TimeoutError(f"no such message within {timeout:g} s; last messages: {kinds}")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), min(left, 0.5))
            except asyncio.TimeoutError:
                pass

    async def wait_frames(self, n: int, timeout: float = 30.0) -> None:
        """Wait until ``n`` video frames have arrived."""
        deadline = time.monotonic() + timeout
        while len(self.video) < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(self.video)} of {n} video frames within {timeout:g} s")
            await asyncio.sleep(0.02)

    async def close(self) -> None:
        if self.pc is not None:
            await self.pc.close()
        for task in self._tasks:
            task.cancel()

    async def __aenter__(self) -> RtcLiveClient:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
