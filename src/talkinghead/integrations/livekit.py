"""A talkinghead avatar inside LiveKit Agents (``pip install 'talkinghead[livekit]'``).

LiveKit's avatar interface is a :class:`~livekit.agents.voice.avatar.VideoGenerator`: the agent's
speech is pushed in (``push_audio`` with ``rtc.AudioFrame`` pieces and ``AudioSegmentEnd`` at the end
of an utterance, ``clear_buffer`` on an interruption) and the generator yields synchronized
``rtc.VideoFrame`` / ``rtc.AudioFrame`` / ``AudioSegmentEnd`` which LiveKit's ``AvatarRunner``
publishes to the room. Three ways to use it:

* :class:`TalkingHeadAvatarSession` — the avatar runs **in the agent worker**: ``await
  TalkingHeadAvatarSession(avatar).start(session, room)`` before ``session.start(...)``;
* :func:`run_avatar_worker` — a **separate avatar worker** joins the room and receives the agent's
  audio over LiveKit data streams (``talkinghead livekit-worker`` runs it from the command line);
  :class:`RemoteAvatarSession` is the agent's side of it;
* :class:`TalkingHeadVideoGenerator` on its own, for any ``AvatarRunner`` set-up of your own.

See ``docs/integrations.md`` for complete examples.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ..errors import ConfigError, MissingDependencyError
from .bridge import SpeechDrivenStream, pcm16_bytes

try:
    from livekit import rtc
    from livekit.agents.voice.avatar import (
        AudioReceiver,
        AudioSegmentEnd,
        AvatarOptions,
        AvatarRunner,
        AvatarSession,
        DataStreamAudioOutput,
        DataStreamAudioReceiver,
        QueueAudioOutput,
        VideoGenerator,
    )
except ImportError as exc:  # pragma: no cover - exercised where livekit-agents is missing
    raise MissingDependencyError("livekit-agents", "livekit", "the LiveKit Agents avatar") from exc

if TYPE_CHECKING:
    from livekit.agents import AgentSession

    from ..avatar import Avatar
    from ..streaming.events import TurnEnded

log = logging.getLogger(__name__)

__all__ = [
    "TalkingHeadVideoGenerator",
    "TalkingHeadAvatarSession",
    "RemoteAvatarSession",
    "AvatarWorkerInfo",
    "run_avatar_worker",
    "launch_worker_process",
]

VideoFormat = Literal["rgba", "rgb24"]
_BUFFER_TYPES = {"rgba": rtc.VideoBufferType.RGBA, "rgb24": rtc.VideoBufferType.RGB24}
#: Identity of the separate avatar worker in the room (RemoteAvatarSession's default).
AVATAR_IDENTITY = "talkinghead-avatar"


class TalkingHeadVideoGenerator(VideoGenerator):
    """LiveKit's ``VideoGenerator`` backed by a talkinghead :class:`~talkinghead.Avatar`.

    Idle frames flow while the agent is silent (video only: no audio, so LiveKit's playback
    position is untouched); pushed speech comes back frame by frame, each ``VideoFrame`` followed by
    the ``AudioFrame`` it covers (``samples_per_frame`` samples at ``sample_rate``), and an
    ``AudioSegmentEnd`` after the last frame of an utterance. ``clear_buffer`` drops what has not
    been handed out; the next frame is idle.

    Args:
        avatar: any Avatar configuration (``animator="viseme"`` works offline; ``"sadtalker"`` when
            its weights are cached). Its models load once per process.
        fps: video frame rate (default: the Avatar's stream fps, 25).
        sample_rate: rate of the audio frames handed back (default 24000).
        video_format: ``"rgba"`` or ``"rgb24"`` buffers.
        max_lead: how far ahead of the wall clock frames may be handed out (seconds); the
            ``AvatarRunner``'s synchronizer queue holds about 0.1 s more.
        on_utterance: called with each utterance's :class:`~talkinghead.streaming.TurnEnded` (its
            ``metrics.first_frame_s`` is the latency from first audio to first frame).
        **session_options: more :class:`~talkinghead.streaming.LiveSession` options.
    """

    def __init__(
        self,
        avatar: Avatar,
        *,
        fps: float | Fraction | None = None,
        sample_rate: int | None = None,
        video_format: VideoFormat = "rgba",
        max_lead: float = 0.2,
        on_utterance: Callable[[TurnEnded], None] | None = None,
        **session_options: Any,
    ) -> None:
        if video_format not in _BUFFER_TYPES:
            raise ConfigError(f"video_format must be one of {sorted(_BUFFER_TYPES)}, got {video_format!r}")
        self.stream = SpeechDrivenStream(
            avatar, fps=fps, sample_rate=sample_rate, max_lead=max_lead, on_utterance=on_utterance, **session_options
        )
        self.video_format: VideoFormat = video_format

    # -- what the AvatarRunner needs to know ------------------------------------------------------
    @property
    def video_fps(self) -> float:
        return float(self.stream.fps)

    @property
    def audio_sample_rate(self) -> int:
        return self.stream.sample_rate

    @property
    def video_resolution(self) -> tuple[int, int]:
        """``(width, height)`` of the video (renders one frame the first time)."""
        return self.stream.frame_size()

    @property
    def options(self) -> AvatarOptions:
        """The ``AvatarOptions`` for an ``AvatarRunner`` publishing this generator's frames."""
        width, height = self.video_resolution
        return AvatarOptions(
            video_width=width,
            video_height=height,
            video_fps=self.video_fps,
            audio_sample_rate=self.audio_sample_rate,
            audio_channels=1,
        )

    @property
    def utterances(self) -> list[TurnEnded]:
        """The recent utterances (status and metrics), oldest first."""
        return list(self.stream.utterances)

    # -- the VideoGenerator protocol ----------------------------------------------------------------
    async def push_audio(self, frame: rtc.AudioFrame | AudioSegmentEnd) -> None:
        """A piece of the agent's speech, or the end of the utterance."""
        if isinstance(frame, AudioSegmentEnd):
            self.stream.end()
            return
        self.stream.push(frame.data, frame.sample_rate, frame.num_channels)

    def clear_buffer(self) -> None:
        """Drop the speech not yet handed out (the user interrupted); the next frames are idle."""
        self.stream.clear()

    def __aiter__(self) -> AsyncIterator[rtc.VideoFrame | rtc.AudioFrame | AudioSegmentEnd]:
        return self._frames()

    async def _frames(self) -> AsyncIterator[rtc.VideoFrame | rtc.AudioFrame | AudioSegmentEnd]:
        buffer_type = _BUFFER_TYPES[self.video_format]
        rate = self.stream.sample_rate
        async for chunk in self.stream.chunks():
            for image, samples in self.stream.frames_of(chunk):
                yield _video_frame(image, buffer_type)
                if samples is not None:
                    yield rtc.AudioFrame(pcm16_bytes(samples), rate, 1, len(samples))
            if chunk.segment_end:
                yield AudioSegmentEnd()

    async def aclose(self) -> None:
        """Stop the stream (the frame iterator ends)."""
        await asyncio.to_thread(self.stream.close)


def _video_frame(image: np.ndarray, buffer_type: Any) -> rtc.VideoFrame:
    h, w = image.shape[:2]
    if buffer_type == rtc.VideoBufferType.RGBA:
        rgba = np.empty((h, w, 4), np.uint8)
        rgba[..., :3] = image
        rgba[..., 3] = 255
        data = rgba.tobytes()
    else:
        data = np.ascontiguousarray(image).tobytes()
    return rtc.VideoFrame(w, h, buffer_type, data)


# -- in the agent worker ---------------------------------------------------------------------------------
class TalkingHeadAvatarSession(AvatarSession):
    """The avatar in the agent worker: the agent's audio goes to a local ``AvatarRunner``.

    ``await TalkingHeadAvatarSession(avatar).start(agent_session, room)`` (before or after
    ``agent_session.start``) routes the agent's speech into a :class:`TalkingHeadVideoGenerator`
    through a ``QueueAudioOutput`` and publishes the avatar's video and audio tracks as the agent's
    own participant. Rendering runs in a worker thread, off the agent's event loop.

    Args:
        avatar: the :class:`~talkinghead.Avatar`.
        **generator_options: options of :class:`TalkingHeadVideoGenerator`.
    """

    def __init__(self, avatar: Avatar, **generator_options: Any) -> None:
        super().__init__()
        self.avatar = avatar
        self._generator_options = generator_options
        self.generator: TalkingHeadVideoGenerator | None = None
        self.runner: AvatarRunner | None = None
        self.audio_output: QueueAudioOutput | None = None
        self._avatar_room: rtc.Room | None = None

    @property
    def avatar_identity(self) -> str:
        # the video is published by the agent's own participant
        room = self._avatar_room
        return room.local_participant.identity if room is not None else ""

    @property
    def provider(self) -> str:
        return "talkinghead"

    async def start(self, agent_session: AgentSession, room: rtc.Room) -> None:  # type: ignore[override]
        """Start the runner and route ``agent_session``'s audio output into it."""
        self._avatar_room = room
        await super().start(agent_session, room)
        generator = TalkingHeadVideoGenerator(self.avatar, **self._generator_options)
        options = await asyncio.to_thread(lambda: generator.options)  # loads the models, renders one frame
        self.generator = generator
        self.audio_output = QueueAudioOutput(sample_rate=generator.audio_sample_rate)
        self.runner = AvatarRunner(room, audio_recv=self.audio_output, video_gen=generator, options=options)
        await self.runner.start()
        _route_audio(agent_session, self.audio_output)

    async def aclose(self) -> None:
        """Stop the runner and the stream."""
        if self.runner is not None:
            await self.runner.aclose()
            self.runner = None
        if self.generator is not None:
            await self.generator.aclose()
            self.generator = None
        # the avatar is the agent's own participant: the base class must not remove it from the room
        if getattr(self, "_room", None) is not None:
            self._room.off("connection_state_changed", self._on_connection_state_changed)  # type: ignore[union-attr]
            self._room = None
        self._avatar_room = None
        await super().aclose()


def _route_audio(agent_session: AgentSession, sink: Any) -> None:
    output = agent_session.output
    if hasattr(output, "replace_audio_tail"):  # keeps the transcript synchronizer and recorder wrappers
        output.replace_audio_tail(sink)
    else:
        output.audio = sink


# -- a separate avatar worker ----------------------------------------------------------------------------
async def run_avatar_worker(
    room: rtc.Room,
    avatar: Avatar,
    *,
    audio_receiver: AudioReceiver | None = None,
    stop: asyncio.Event | None = None,
    **generator_options: Any,
) -> TalkingHeadVideoGenerator:
    """Run the avatar as its own participant in a connected ``room`` until the agent leaves.

    The agent sends its audio with ``DataStreamAudioOutput`` (see :class:`RemoteAvatarSession`);
    this worker receives it with ``DataStreamAudioReceiver``, renders, and publishes video and audio
    on the agent's behalf. Returns (the generator, for its metrics) when the agent participant
    disconnects, the room disconnects, ``stop`` is set, or the runner ends.

    Args:
        room: a connected ``rtc.Room`` (joined with a token from :class:`RemoteAvatarSession`).
        avatar: the :class:`~talkinghead.Avatar`.
        audio_receiver: where the agent's audio comes from (default ``DataStreamAudioReceiver(room)``).
        stop: set it to stop the worker.
        **generator_options: options of :class:`TalkingHeadVideoGenerator`.
    """
    generator = TalkingHeadVideoGenerator(avatar, **generator_options)
    options = await asyncio.to_thread(lambda: generator.options)
    receiver = audio_receiver if audio_receiver is not None else DataStreamAudioReceiver(room)
    runner = AvatarRunner(room, audio_recv=receiver, video_gen=generator, options=options)
    stop = stop or asyncio.Event()

    def on_participant_disconnected(participant: rtc.RemoteParticipant) -> None:
        if participant.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT:
            log.info("agent %s left the room; stopping the avatar worker", participant.identity)
            stop.set()

    def on_disconnected(*_: Any) -> None:
        stop.set()

    room.on("participant_disconnected", on_participant_disconnected)
    room.on("disconnected", on_disconnected)
    tasks: list[asyncio.Task[Any]] = []
    try:
        await runner.start()
        tasks = [asyncio.create_task(runner.wait_for_complete()), asyncio.create_task(stop.wait())]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        room.off("participant_disconnected", on_participant_disconnected)
        room.off("disconnected", on_disconnected)
        await runner.aclose()
        await generator.aclose()
    return generator


@dataclass(frozen=True)
class AvatarWorkerInfo:
    """What a separate avatar worker needs to join the agent's room."""

    url: str
    token: str
    room_name: str
    identity: str


class RemoteAvatarSession(AvatarSession):
    """The agent's side of a separate avatar worker (:func:`run_avatar_worker`).

    ``start`` makes a token for the avatar to join the room and publish on the agent's behalf, hands
    it to ``launch`` (start a process, call a dispatcher over HTTP...), and routes the agent's audio
    to the avatar with ``DataStreamAudioOutput``.

    Args:
        launch: ``launch(info)`` starts the worker (sync or async); :func:`launch_worker_process`
            makes one that runs ``talkinghead livekit-worker`` on this machine.
        url: the LiveKit server URL the worker connects to (default: ``LIVEKIT_URL``).
        api_key, api_secret: for the token (default: ``LIVEKIT_API_KEY`` / ``LIVEKIT_API_SECRET``).
        avatar_identity: the worker's participant identity.
        wait_for_video: hold the agent's speech until the avatar's video track is published.
    """

    def __init__(
        self,
        launch: Callable[[AvatarWorkerInfo], Awaitable[Any] | Any],
        *,
        url: str | None = None,
        api_key: str | None = None,
        api_secret: str | None = None,
        avatar_identity: str = AVATAR_IDENTITY,
        wait_for_video: bool = True,
    ) -> None:
        super().__init__()
        self._launch = launch
        self._url = url
        self._api_key, self._api_secret = api_key, api_secret
        self._identity = avatar_identity
        self._wait_for_video = wait_for_video

    @property
    def avatar_identity(self) -> str:
        return self._identity

    @property
    def provider(self) -> str:
        return "talkinghead"

    def worker_info(self, room: rtc.Room) -> AvatarWorkerInfo:
        """The URL and token the worker joins ``room`` with (publishing on the agent's behalf)."""
        from livekit import api
        from livekit.agents.types import ATTRIBUTE_PUBLISH_ON_BEHALF

        url = self._url or os.environ.get("LIVEKIT_URL")
        if not url:
            raise ConfigError("RemoteAvatarSession needs the LiveKit server URL: pass url= or set LIVEKIT_URL")
        token = (
            api.AccessToken(self._api_key, self._api_secret)
            .with_kind("agent")
            .with_identity(self._identity)
            .with_name("talkinghead avatar")
            .with_grants(api.VideoGrants(room_join=True, room=room.name))
            .with_attributes({ATTRIBUTE_PUBLISH_ON_BEHALF: room.local_participant.identity})
            .to_jwt()
        )
        return AvatarWorkerInfo(url=url, token=token, room_name=room.name, identity=self._identity)

    async def start(self, agent_session: AgentSession, room: rtc.Room) -> None:  # type: ignore[override]
        """Launch the worker and route the agent's audio to it."""
        await super().start(agent_session, room)
        result = self._launch(self.worker_info(room))
        if inspect.isawaitable(result):
            await result
        options: dict[str, Any] = {}
        if "wait_playback_start" in inspect.signature(DataStreamAudioOutput.__init__).parameters:
            options["wait_playback_start"] = True  # the AvatarRunner reports when playback starts (>= 1.5.6)
        sink = DataStreamAudioOutput(
            room,
            destination_identity=self._identity,
            wait_remote_track=rtc.TrackKind.KIND_VIDEO if self._wait_for_video else None,
            **options,
        )
        _route_audio(agent_session, sink)


def launch_worker_process(image: str, *args: str, python: str | None = None) -> Callable[[AvatarWorkerInfo], Any]:
    """A ``launch`` for :class:`RemoteAvatarSession` that starts ``talkinghead livekit-worker`` here.

    ``args`` are more flags of that command (``"--animator", "sadtalker"``...). The URL and token
    reach the child process in its own environment (``LIVEKIT_URL``, ``LIVEKIT_TOKEN``), never on its
    command line. Returns the launcher; each call returns the started ``subprocess.Popen``.
    """
    import subprocess
    import sys

    def launch(info: AvatarWorkerInfo) -> subprocess.Popen[bytes]:
        env = {**os.environ, "LIVEKIT_URL": info.url, "LIVEKIT_TOKEN": info.token}
        cmd = [python or sys.executable, "-m", "talkinghead.cli", "livekit-worker", "--image", str(image), *args]
        log.info("starting the avatar worker for room %s", info.room_name)
        return subprocess.Popen(cmd, env=env)

    return launch


async def connect_and_run(url: str, token: str, avatar: Avatar, **generator_options: Any) -> TalkingHeadVideoGenerator:
    """Connect to the room the ``token`` grants and run :func:`run_avatar_worker` until the agent leaves."""
    room = rtc.Room()
    await room.connect(url, token)
    log.info("avatar worker joined room %s as %s", room.name, room.local_participant.identity)
    try:
        return await run_avatar_worker(room, avatar, **generator_options)
    finally:
        await room.disconnect()
