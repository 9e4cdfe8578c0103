"""WebRTC for live sessions, with aiortc: the SDP offer/answer, one audio and one video track on the
stream's one clock, the data channel, the user's microphone, and ICE configuration.

**One clock.** Both tracks are fed from the same :class:`~talkinghead.values.AVChunk` s: a video
frame's presentation time is its global frame index on the 90 kHz RTP video clock, and the audio
is cut into 20 ms Opus frames whose time is the sample counter at 48 kHz — never the wall clock.
The session paces the chunks to real time (:attr:`LiveSession.realtime`), so frames leave at the
stream's rate and the receiver's RTCP-based lip sync sees two timelines that start together and
never drift.

**Live, not late.** At most :data:`MAX_VIDEO_LAG_S` of video waits for the encoder: when the
machine cannot encode in real time the oldest frames are dropped (the frame rate falls, the face
stays on time). When an answer is interrupted (barge-in), its frames and voice still waiting to
be sent go too: the video frames are dropped and the audio frames are sent as silence with the
same timestamps, so the user hears the avatar stop at once, even on a busy machine.

**ICE.** Host candidates only unless the operator gives STUN/TURN servers
(``ServerSettings.ice_servers``); ``ice_addresses`` binds the host candidates to chosen addresses
(tests: ``127.0.0.1``; aiortc itself leaves loopback out).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections import deque
from fractions import Fraction
from typing import Any

import numpy as np

from ..errors import MissingDependencyError
from ..values import AVChunk
from .errors import ApiError
from .live import LIVE_SAMPLE_RATE, ClientTooSlow, LiveLink

log = logging.getLogger(__name__)

__all__ = ["RtcTransport", "ChunkTracks", "ice_configuration", "restrict_host_candidates"]

#: RTP clock of video (every WebRTC video codec uses 90 kHz).
VIDEO_CLOCK = 90_000
#: Samples per Opus frame (20 ms at 48 kHz).
AUDIO_FRAME = 960
#: Seconds of video that may wait for the encoder before the oldest frames are dropped (5 frames at
#: 25 fps): a machine that cannot encode in real time shows fewer frames, not older ones.
MAX_VIDEO_LAG_S = 0.2
#: Audio frames that may wait before the client counts as too slow (10 s); audio is never dropped,
#: because Opus timestamps count samples and a gap would shift the voice against the face (a cut
#: answer's voice is silenced instead, with the same timestamps).
MAX_AUDIO_QUEUE = 500


def _aiortc() -> Any:
    try:
        import aiortc
    except ImportError as exc:
        raise MissingDependencyError("aiortc", "live", "live conversations over WebRTC") from exc
    return aiortc


def ice_configuration(ice_servers: Any = ()) -> Any:
    """An ``RTCConfiguration`` with exactly these STUN/TURN servers (none: host candidates only).

    aiortc would otherwise add a public STUN server, which a machine without internet waits for.
    """
    aiortc = _aiortc()
    servers = [aiortc.RTCIceServer(urls=s["urls"], username=s.get("username"), credential=s.get("credential"))
               for s in ice_servers]
    return aiortc.RTCConfiguration(iceServers=servers)


def restrict_host_candidates(pc: Any, addresses: Any) -> None:
    """Make ``pc`` gather host candidates on ``addresses`` only (call before ``setLocalDescription``).

    aiortc gathers on every interface except loopback and has no option to choose; tests and
    single-machine set-ups need ``127.0.0.1``, and servers with several interfaces may want one.
    This replaces the gathering step of each of ``pc``'s ICE connections (aioice) with one that
    binds the given addresses — the rest of ICE (checks, nomination, TURN) is unchanged.
    """
    addresses = [str(a) for a in addresses]
    gatherers = {t.sender.transport.transport.iceGatherer for t in pc.getTransceivers() if t.sender.transport}
    if pc.sctp is not None:
        gatherers.add(pc.sctp.transport.transport.iceGatherer)
    for gatherer in gatherers:
        connection = gatherer._connection

        async def gather(connection: Any = connection) -> None:
            if connection._local_candidates_start:
                return
            connection._local_candidates_start = True
            for component in sorted(connection._components):
                connection._local_candidates += await connection.get_component_candidates(
                    component=component, addresses=addresses)
            connection._local_candidates_end = True

        connection.gather_candidates = gather


class _MediaQueue:
    """Frames waiting for one of aiortc's senders (used on the event loop only), each with the turn
    whose speech it carries (None for idle and listening frames)."""

    def __init__(self) -> None:
        self.items: deque[tuple[int | None, Any]] = deque()
        self._ready = asyncio.Event()

    def __len__(self) -> int:
        return len(self.items)

    def put(self, turn: int | None, frame: Any) -> None:
        self.items.append((turn, frame))
        self._ready.set()

    async def get(self) -> Any:
        while not self.items:
            self._ready.clear()
            await self._ready.wait()
        return self.items.popleft()[1]


class ChunkTracks:
    """One audio and one video ``MediaStreamTrack`` fed from the same chunks, on their counters.

    :meth:`feed` runs on the link's pump thread (it builds the frames there, off the event loop);
    the tracks' ``recv`` hands them to aiortc's senders on the loop. :meth:`cut` takes an
    interrupted answer out of what is still waiting.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        aiortc = _aiortc()
        self.loop = loop
        tracks = self

        class VideoTrack(aiortc.MediaStreamTrack):
            kind = "video"

            async def recv(self) -> Any:
                return await tracks._next(tracks._video, self)

        class AudioTrack(aiortc.MediaStreamTrack):
            kind = "audio"

            async def recv(self) -> Any:
                return await tracks._next(tracks._audio, self)

        self._video = _MediaQueue()
        self._audio = _MediaQueue()
        self.video, self.audio = VideoTrack(), AudioTrack()
        self._first: int | None = None
        self._max_video = 1
        self._samples = 0
        self._rest = np.zeros(0, np.int16)
        self._rest_turn: int | None = None  # the turn whose speech the carried-over samples are
        self._cut: set[int] = set()  # interrupted turns (loop side)
        self.dropped_frames = 0  # video frames the encoder had no time for
        self.cut_frames = 0  # video frames of interrupted answers that were never sent
        self.silenced_audio_frames = 0  # 20 ms audio frames of interrupted answers sent as silence
        self.sent_frames = 0

    async def _next(self, queue: _MediaQueue, track: Any) -> Any:
        frame = await queue.get()
        if frame is None:
            track.stop()
            from aiortc.mediastreams import MediaStreamError

            raise MediaStreamError
        if queue is self._video:
            self.sent_frames += 1
        return frame

    def feed(self, chunk: AVChunk) -> None:
        """Turn a chunk into video frames (pts = frame index) and 20 ms audio frames (pts = sample index)."""
        import av

        if len(self._audio) > MAX_AUDIO_QUEUE:
            raise ClientTooSlow("the connection does not take the stream as fast as it plays; closing it")
        if self._first is None:
            self._first = chunk.first_frame
            if chunk.sample_rate != LIVE_SAMPLE_RATE:
                raise ValueError(f"WebRTC streams run at {LIVE_SAMPLE_RATE} Hz, got {chunk.sample_rate}")
            self._max_video = max(1, math.ceil(MAX_VIDEO_LAG_S * float(chunk.fps)))
        turn = chunk.turn if chunk.kind == "speech" else None
        step = Fraction(VIDEO_CLOCK) / chunk.fps
        video = []
        for i, image in enumerate(chunk.frames):
            h, w = image.shape[:2]
            if h % 2 or w % 2:  # the encoders want even sizes
                image = np.pad(image, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            frame.pts = round((chunk.first_frame + i - self._first) * step)
            frame.time_base = Fraction(1, VIDEO_CLOCK)
            video.append(frame)
        pcm = np.concatenate([self._rest, (np.clip(chunk.samples, -1.0, 1.0) * 32767).astype(np.int16)])
        n = len(pcm) // AUDIO_FRAME
        audio = []
        for k in range(n):
            # a frame that starts with the previous chunk's samples carries that chunk's speech too
            carried = self._rest_turn if k * AUDIO_FRAME < len(self._rest) else None
            audio.append((turn if turn is not None else carried,
                          _audio_frame(pcm[k * AUDIO_FRAME:(k + 1) * AUDIO_FRAME], self._samples)))
            self._samples += AUDIO_FRAME
        if len(pcm) > n * AUDIO_FRAME:
            self._rest_turn = turn if turn is not None else (self._rest_turn if n == 0 else None)
        else:
            self._rest_turn = None
        self._rest = pcm[n * AUDIO_FRAME:]
        self.loop.call_soon_threadsafe(self._put, [(turn, f) for f in video], audio)

    def _put(self, video: list[tuple[int | None, Any]], audio: list[tuple[int | None, Any]]) -> None:
        for turn, frame in video:
            if turn in self._cut:  # made just before the cut reached the stream
                self.cut_frames += 1
                continue
            while len(self._video) >= self._max_video:  # the encoder fell behind: the oldest frames go
                self._video.items.popleft()
                self.dropped_frames += 1
            self._video.put(turn, frame)
        for turn, frame in audio:
            if turn in self._cut:
                frame, turn = self._silent(frame), None
            self._audio.put(turn, frame)

    def cut(self, turn: int) -> None:
        """The answer of ``turn`` was interrupted: what of it still waits is not sent (thread-safe).

        Its video frames are dropped; its audio frames are replaced by silence with the same
        timestamps (the audio clock has no gap, so the voice stays on the face afterwards).
        """
        self.loop.call_soon_threadsafe(self._cut_now, int(turn))

    def _cut_now(self, turn: int) -> None:
        self._cut.add(turn)
        kept = deque(item for item in self._video.items if item[0] != turn)
        self.cut_frames += len(self._video) - len(kept)
        self._video.items = kept
        self._audio.items = deque((None, self._silent(f)) if t == turn else (t, f)
                                  for t, f in self._audio.items)

    def _silent(self, frame: Any) -> Any:
        self.silenced_audio_frames += 1
        return _audio_frame(np.zeros(frame.samples, np.int16), frame.pts)

    def stop(self) -> None:
        """End both tracks (on the loop)."""
        self._video.put(None, None)
        self._audio.put(None, None)


def _audio_frame(pcm: np.ndarray, pts: int) -> Any:
    """A mono 16-bit PyAV audio frame at 48 kHz whose time is the sample counter ``pts``."""
    import av

    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(pcm)[None], format="s16", layout="mono")
    frame.sample_rate = LIVE_SAMPLE_RATE
    frame.pts = pts
    frame.time_base = Fraction(1, LIVE_SAMPLE_RATE)
    return frame


class RtcTransport:
    """The WebRTC side of one live link: peer connection, tracks, data channel and microphone.

    Args:
        link: the live link (its session is built).
        settings: the server settings (ICE servers and addresses, connect timeout).
    """

    def __init__(self, link: LiveLink, settings: Any) -> None:
        self.link, self.settings = link, settings
        self.loop = asyncio.get_running_loop()
        self.tracks = ChunkTracks(self.loop)
        self.pc: Any = None
        self.channel: Any = None
        self._outbox: list[str] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        link.on_close(self._closed)

    async def answer(self, offer_sdp: str) -> str:
        """Answer the client's SDP offer; the stream starts once the peer is connected.

        Raises:
            ApiError: 400 when the offer cannot be used (not SDP, no audio or no video section).
        """
        aiortc = _aiortc()
        if "m=audio" not in offer_sdp or "m=video" not in offer_sdp:
            raise ApiError(400, "BadRequest", "the offer needs an audio and a video section: the page receives the "
                           "avatar's voice and face (addTransceiver('audio'), addTransceiver('video', "
                           "{direction: 'recvonly'})) and may send its microphone on the audio one")
        pc = self.pc = aiortc.RTCPeerConnection(ice_configuration(self.settings.ice_servers))
        pc.on("datachannel", self._on_channel)
        pc.on("track", self._on_track)
        pc.on("connectionstatechange", self._on_state)
        try:
            await pc.setRemoteDescription(aiortc.RTCSessionDescription(sdp=offer_sdp, type="offer"))
        except Exception as exc:  # aiortc's parser raises many kinds of errors on bad SDP
            raise ApiError(400, "BadRequest", f"the SDP offer cannot be used: {exc or type(exc).__name__}") from None
        pc.addTrack(self.tracks.audio)
        pc.addTrack(self.tracks.video)
        if self.settings.ice_addresses is not None:
            restrict_host_candidates(pc, self.settings.ice_addresses)
        await pc.setLocalDescription(await pc.createAnswer())
        self.link.attach(self.send, self.tracks.feed, on_cut=self.tracks.cut)
        self._spawn(self._connect_timeout())
        return pc.localDescription.sdp

    # -- events of the peer connection (on the loop) ---------------------------------------------
    def _on_state(self) -> None:
        state = self.pc.connectionState
        log.debug("live %s: connection %s", self.link.id, state)
        if state == "connected":
            self.link.start()
        elif state in ("failed", "closed"):
            self.link.close("peer_gone")

    def _on_channel(self, channel: Any) -> None:
        self.channel = channel
        channel.on("message", self.link.receive_text)
        channel.on("close", lambda: self.link.close("peer_gone"))
        channel.send(json.dumps(self.link.ready_message()))
        pending, self._outbox = self._outbox, []
        for text in pending:
            channel.send(text)

    def _on_track(self, track: Any) -> None:
        if track.kind == "audio":
            self._spawn(self._microphone(track))

    async def _microphone(self, track: Any) -> None:
        """The user's voice, decoded by aiortc, to the session in pieces of 100 ms."""
        from aiortc.mediastreams import MediaStreamError

        pieces: list[np.ndarray] = []
        n = 0
        while not self.link.closed:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            channels = len(frame.layout.channels)
            pcm = frame.to_ndarray().reshape(-1, channels).mean(axis=1) / 32768.0
            pieces.append(pcm.astype(np.float32))
            n += len(pcm)
            if n >= frame.sample_rate // 10:
                self.link.push_audio(np.concatenate(pieces), frame.sample_rate)
                pieces, n = [], 0

    async def _connect_timeout(self) -> None:
        await asyncio.sleep(self.settings.live_connect_timeout)
        if self.link.started is None and not self.link.closed:
            self.link.close("connect_timeout")

    # -- to the client ---------------------------------------------------------------------------
    def send(self, message: dict[str, Any]) -> None:
        """Send a JSON message on the data channel (thread-safe; queued until the channel opens)."""
        text = json.dumps(message)
        self.loop.call_soon_threadsafe(self._send_now, text)

    def _send_now(self, text: str) -> None:
        channel = self.channel
        if channel is None:
            self._outbox.append(text)
        elif channel.readyState == "open":
            channel.send(text)

    # -- closing ---------------------------------------------------------------------------------
    def _spawn(self, coro: Any) -> None:
        task = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _closed(self, reason: str) -> None:
        def stop() -> None:
            self.tracks.stop()
            if self.pc is not None:
                self._spawn(self._close_pc())

        try:
            self.loop.call_soon_threadsafe(stop)
        except RuntimeError:  # the loop is gone (server shutdown)
            pass

    async def _close_pc(self) -> None:
        await asyncio.sleep(0.2)  # let the "closed" message leave on the data channel
        for task in list(self._tasks):
            if task is not asyncio.current_task():
                task.cancel()
        await self.pc.close()
