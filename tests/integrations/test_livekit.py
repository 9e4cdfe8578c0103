"""The LiveKit adapter inside LiveKit's own avatar pipeline, offline.

Speech goes in through ``QueueAudioOutput`` (the sink an ``AgentSession`` writes to), LiveKit's
``AvatarRunner`` pushes it into our ``VideoGenerator`` and our frames through its ``AVSynchronizer``
into real ``rtc.AudioSource`` / ``rtc.VideoSource`` objects (LiveKit's native media engine, which
runs without a server). Only the room is a stand-in: there is no LiveKit server here.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

pytest.importorskip("livekit.agents", reason="needs talkinghead[livekit] (the .venv-agents environment)")

from livekit import rtc  # noqa: E402
from livekit.agents import DEFAULT_API_CONNECT_OPTIONS, Agent, AgentSession, tts  # noqa: E402
from livekit.agents.voice.avatar import (  # noqa: E402
    AudioSegmentEnd,
    AvatarOptions,
    AvatarRunner,
    AvatarSession,
    QueueAudioOutput,
    VideoGenerator,
)

from talkinghead.integrations.livekit import (  # noqa: E402
    RemoteAvatarSession,
    TalkingHeadAvatarSession,
    TalkingHeadVideoGenerator,
    run_avatar_worker,
)

from talkinghead.integrations import pcm16_bytes as pcm16  # noqa: E402
from talkinghead.testing import tone_speech  # noqa: E402

FPS = 25


# -- a stand-in for rtc.Room (no server here); everything else is LiveKit's own -----------------------
class _Emitter:
    def __init__(self) -> None:
        self.handlers: dict[str, list[Any]] = {}

    def on(self, event: str, callback: Any = None) -> Any:
        if callback is None:
            return lambda cb: self.on(event, cb)
        self.handlers.setdefault(event, []).append(callback)
        return callback

    def off(self, event: str, callback: Any) -> None:
        if callback in self.handlers.get(event, []):
            self.handlers[event].remove(callback)

    def emit(self, event: str, *args: Any) -> None:
        for cb in list(self.handlers.get(event, [])):
            cb(*args)


@dataclass
class _Publication:
    track: Any
    kind: int
    sid: str

    async def wait_for_subscription(self) -> None:
        return None


@dataclass
class _LocalParticipant:
    room: Any
    identity: str = "agent-1"
    kind: int = rtc.ParticipantKind.PARTICIPANT_KIND_AGENT
    published: list[Any] = field(default_factory=list)
    track_publications: dict[str, _Publication] = field(default_factory=dict)

    async def publish_track(self, track: Any, options: Any) -> _Publication:
        self.published.append(track)
        pub = _Publication(track, track.kind, f"TR_{len(self.published)}")
        self.track_publications[pub.sid] = pub
        self.room.emit("local_track_published", pub, track)
        return pub


class FakeRoom(_Emitter):
    name = "test-room"

    def __init__(self) -> None:
        super().__init__()
        self.local_participant = _LocalParticipant(self)
        self.remote_participants: dict[str, Any] = {}

    def isconnected(self) -> bool:
        return True


class Recorder:
    """Records what the AvatarRunner pushes into its AVSynchronizer (and lets it through)."""

    def __init__(self, runner: AvatarRunner) -> None:
        self.items: list[tuple[float, Any]] = []
        push = runner.av_sync.push

        async def recording_push(frame: Any, timestamp: float | None = None) -> None:
            self.items.append((time.perf_counter(), frame))
            await push(frame, timestamp)

        runner.av_sync.push = recording_push  # type: ignore[method-assign]

    def videos(self, since: int = 0) -> list[tuple[int, rtc.VideoFrame, bool]]:
        """(index, frame, followed by its audio) for the video frames from item ``since`` on."""
        out = []
        for i in range(since, len(self.items)):
            frame = self.items[i][1]
            if isinstance(frame, rtc.VideoFrame):
                nxt = self.items[i + 1][1] if i + 1 < len(self.items) else None
                out.append((i, frame, isinstance(nxt, rtc.AudioFrame)))
        return out


async def push_speech(out: QueueAudioOutput, samples: np.ndarray, rate: int, piece_ms: int = 20) -> None:
    n = rate * piece_ms // 1000
    for start in range(0, len(samples), n):
        piece = samples[start : start + n]
        await out.capture_frame(rtc.AudioFrame(pcm16(piece), rate, 1, len(piece)))
    out.flush()


async def wait_until(predicate: Any, timeout: float, what: str) -> None:
    t_end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < t_end, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


def test_generator_passes_livekit_type_checks(avatar):
    gen = TalkingHeadVideoGenerator(avatar)
    assert isinstance(gen, VideoGenerator)
    options = gen.options
    assert isinstance(options, AvatarOptions)
    assert (options.video_width, options.video_height) == (256, 256)
    assert options.video_fps == FPS and options.audio_sample_rate == 24000 and options.audio_channels == 1
    assert isinstance(TalkingHeadAvatarSession(avatar), AvatarSession)
    assert isinstance(RemoteAvatarSession(lambda info: None), AvatarSession)


@pytest.mark.slow
def test_speech_through_avatar_runner_and_interruption(avatar, speech):
    """Audio in → frames out at 25 fps, one frame per 40 ms of audio, then an interruption goes idle."""
    utterances = []
    playback: list[Any] = []

    async def main():
        gen = TalkingHeadVideoGenerator(avatar, on_utterance=utterances.append)
        audio_out = QueueAudioOutput(sample_rate=24000)
        audio_out.on("playback_finished", playback.append)
        runner = AvatarRunner(FakeRoom(), audio_recv=audio_out, video_gen=gen, options=gen.options)
        rec = Recorder(runner)
        await runner.start()
        try:
            await wait_until(lambda: len(rec.videos()) >= 40, 20, "idle frames")
            idle = rec.videos()
            assert not any(with_audio for _, _, with_audio in idle), "idle frames carry no audio"
            t_idle = [rec.items[i][0] for i, _, _ in idle]
            mark = len(rec.items)

            # one utterance: 1.6 s at 48 kHz in 20 ms pieces, resampled by LiveKit to 24 kHz
            await push_speech(audio_out, speech.samples, speech.sample_rate)
            await asyncio.wait_for(audio_out.wait_for_playout(), 30)
            await wait_until(lambda: len(rec.videos(mark)) >= 5 + sum(w for _, _, w in rec.videos(mark)), 10, "idle again")
            items = rec.items[mark:]
            speech_frames = [f for k, (_, f) in enumerate(items) if isinstance(f, rtc.VideoFrame)
                             and k + 1 < len(items) and isinstance(items[k + 1][1], rtc.AudioFrame)]
            audio = [f for _, f in items if isinstance(f, rtc.AudioFrame)]
            expected = speech.duration * FPS
            assert abs(len(speech_frames) - expected) <= 1, (len(speech_frames), expected)
            assert all(a.samples_per_channel == 960 and a.sample_rate == 24000 for a in audio)
            assert len(audio) == len(speech_frames)
            # the audio handed back is the speech pushed in (LiveKit's resampler, then ours: 48k→24k→24k)
            got = np.concatenate([np.frombuffer(bytes(a.data), np.int16) for a in audio]).astype(np.float32) / 32768
            ref = speech.resample(24000).samples
            n = min(len(got), len(ref))
            corr = np.corrcoef(np.abs(got[:n]), np.abs(ref[:n]))[0, 1]
            assert corr > 0.8, corr
            assert playback and not playback[-1].interrupted
            assert abs(playback[-1].playback_position - len(audio) * 0.04) < 1e-6
            assert all(f.width == 256 and f.height == 256 and f.type == rtc.VideoBufferType.RGBA for f in speech_frames)
            ends = [f for _, f in items if isinstance(f, AudioSegmentEnd)]
            assert ends == [] or all(isinstance(e, AudioSegmentEnd) for e in ends)  # consumed by the runner

            # frames flow at the stream fps (wall clock), after the first max_lead (0.2 s) went out at once
            steady = t_idle[10:]
            rate = (len(steady) - 1) / (steady[-1] - steady[0])
            assert 0.8 * FPS <= rate <= 1.2 * FPS, rate

            # an interruption: clear_buffer half-way through a long utterance
            mark = len(rec.items)
            long = np.tile(speech.samples, 3)
            await push_speech(audio_out, long, speech.sample_rate)
            await wait_until(lambda: sum(w for _, _, w in rec.videos(mark)) >= 10, 10, "speech frames")
            audio_out.clear_buffer()
            cleared_at = len(rec.items)
            await wait_until(lambda: len(rec.videos(cleared_at)) >= 15, 10, "frames after the interruption")
            after = rec.videos(cleared_at)
            spoken_after = sum(w for _, _, w in after)
            assert spoken_after <= 2, f"{spoken_after} speech frames after clear_buffer"
            assert not any(w for _, _, w in after[spoken_after + 1 :]), "back to idle for good"
            await wait_until(lambda: any(p.interrupted for p in playback), 5, "interrupted playback")
            spoken = sum(w for _, _, w in rec.videos(mark))
            assert spoken < len(long) / speech.sample_rate * FPS / 2
        finally:
            await runner.aclose()
            await gen.aclose()

    asyncio.run(asyncio.wait_for(main(), 90))
    done = [u for u in utterances if u.status == "done"]
    assert len(done) == 1 and done[0].metrics.av_drift_samples == 0
    assert done[0].metrics.first_frame_s is not None and done[0].metrics.first_frame_s < 1.0
    assert [u.status for u in utterances][-1] == "interrupted"


@pytest.mark.slow
def test_separate_worker_runs_until_the_agent_leaves(avatar, speech):
    """run_avatar_worker: the avatar worker's loop (receiver given: data streams need a LiveKit server)."""

    async def main():
        room = FakeRoom()
        audio_out = QueueAudioOutput(sample_rate=24000)
        worker = asyncio.create_task(run_avatar_worker(room, avatar, audio_receiver=audio_out))
        await wait_until(lambda: room.local_participant.published, 20, "published tracks")
        await push_speech(audio_out, speech.samples, speech.sample_rate)
        event = await asyncio.wait_for(audio_out.wait_for_playout(), 30)
        assert not event.interrupted and event.playback_position == pytest.approx(speech.duration, abs=0.05)
        kinds = {type(t).__name__ for t in room.local_participant.published}
        assert kinds == {"LocalAudioTrack", "LocalVideoTrack"}

        @dataclass
        class Agent:
            identity: str = "agent-1"
            kind: int = rtc.ParticipantKind.PARTICIPANT_KIND_AGENT

        room.emit("participant_disconnected", Agent())
        generator = await asyncio.wait_for(worker, 10)
        assert [u.status for u in generator.utterances] == ["done"]
        assert not room.handlers.get("participant_disconnected")  # its listeners are removed

    asyncio.run(asyncio.wait_for(main(), 90))


class ToneTTS(tts.TTS):
    """A LiveKit TTS plug-in that "speaks" tone_speech (one 0.3 s tone per word), offline."""

    def __init__(self) -> None:
        super().__init__(capabilities=tts.TTSCapabilities(streaming=False), sample_rate=16000, num_channels=1)

    def synthesize(self, text: str, *, conn_options: Any = DEFAULT_API_CONNECT_OPTIONS) -> tts.ChunkedStream:
        return _ToneStream(tts=self, input_text=text, conn_options=conn_options)


class _ToneStream(tts.ChunkedStream):
    async def _run(self, output_emitter: tts.AudioEmitter) -> None:
        audio = tone_speech(self.input_text.split(), sample_rate=16000)
        output_emitter.initialize(request_id="tone", sample_rate=16000, num_channels=1, mime_type="audio/pcm")
        output_emitter.push(pcm16(audio.samples))
        output_emitter.flush()


@pytest.mark.slow
def test_in_agent_worker_with_agent_session(avatar):
    """LiveKit's AgentSession speaks through its TTS into TalkingHeadAvatarSession; interrupt() idles."""
    words = "one two three four"
    expected = tone_speech(words.split(), sample_rate=16000).duration * FPS

    async def main():
        room = FakeRoom()
        session = AgentSession(tts=ToneTTS())
        avatar_session = TalkingHeadAvatarSession(avatar, on_utterance=utterances.append)
        await avatar_session.start(session, room)
        assert avatar_session.audio_output is not None and avatar_session.runner is not None
        rec = Recorder(avatar_session.runner)
        await session.start(agent=Agent(instructions="You are a test."))
        try:
            await wait_until(lambda: len(rec.videos()) >= 5, 20, "idle frames")
            mark = len(rec.items)
            handle = session.say(words)
            await asyncio.wait_for(handle.wait_for_playout(), 30)
            spoken = sum(w for _, _, w in rec.videos(mark))
            assert abs(spoken - expected) <= 1, (spoken, expected)
            assert not handle.interrupted
            assert avatar_session.avatar_identity == "agent-1"  # published as the agent itself
            assert {type(t).__name__ for t in room.local_participant.published} == {"LocalAudioTrack", "LocalVideoTrack"}

            mark = len(rec.items)
            handle = session.say(" ".join(["word"] * 12))
            await wait_until(lambda: sum(w for _, _, w in rec.videos(mark)) >= 10, 10, "speech frames")
            handle.interrupt()
            cut = len(rec.items)
            await wait_until(lambda: len(rec.videos(cut)) >= 10, 10, "frames after the interruption")
            after = rec.videos(cut)
            assert sum(w for _, _, w in after) <= 2 and not any(w for _, _, w in after[3:])
            await asyncio.wait_for(handle.wait_for_playout(), 10)
            assert handle.interrupted
        finally:
            await session.aclose()
            await avatar_session.aclose()

    utterances: list[Any] = []
    asyncio.run(asyncio.wait_for(main(), 120))
    assert [u.status for u in utterances] == ["done", "interrupted"]
    assert utterances[0].metrics.first_frame_s < 1.0
