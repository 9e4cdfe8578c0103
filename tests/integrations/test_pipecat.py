"""The Pipecat adapter inside Pipecat's own pipeline objects, offline.

``run_pipeline`` builds a ``Pipeline`` with Pipecat's worker and runner; the output transport of the
last test is a real ``BaseOutputTransport`` (Pipecat's media sender, audio queue and video task)
that only writes into lists instead of a network.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

pytest.importorskip("pipecat", reason="needs talkinghead[pipecat] (the .venv-agents environment)")

from pipecat.frames.frames import (  # noqa: E402
    EndFrame,
    Frame,
    InterruptionFrame,
    MetricsFrame,
    OutputImageRawFrame,
    StartFrame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
)
from pipecat.metrics.metrics import TTFBMetricsData  # noqa: E402
from pipecat.pipeline.pipeline import Pipeline  # noqa: E402
from pipecat.pipeline.worker import PipelineParams, PipelineWorker  # noqa: E402
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor  # noqa: E402
from pipecat.transports.base_output import BaseOutputTransport  # noqa: E402
from pipecat.transports.base_transport import TransportParams  # noqa: E402
from pipecat.workers.runner import WorkerRunner  # noqa: E402

from talkinghead.integrations import pcm16_bytes  # noqa: E402
from talkinghead.integrations.pipecat import TalkingHeadVideoService  # noqa: E402

FPS = 25

class Sink(FrameProcessor):
    """Records every frame that reaches the end of the pipeline, with its arrival time."""

    def __init__(self) -> None:
        super().__init__()
        self.frames: list[tuple[float, Frame]] = []

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if direction == FrameDirection.DOWNSTREAM:
            self.frames.append((time.perf_counter(), frame))
        await self.push_frame(frame, direction)


def tts_frames(samples: np.ndarray, rate: int, piece_ms: int = 20) -> list[Frame]:
    """What a Pipecat TTS service emits for one utterance."""
    n = rate * piece_ms // 1000
    pieces = [TTSAudioRawFrame(pcm16_bytes(samples[i : i + n]), rate, 1) for i in range(0, len(samples), n)]
    return [TTSStartedFrame(), *pieces, TTSStoppedFrame()]


async def run_pipeline(processors: Sequence[FrameProcessor], script: Sequence[Any], *, metrics: bool = True) -> None:
    """Run ``Pipeline(processors)``; ``script`` holds frames to queue and seconds to wait; ends with EndFrame."""
    worker = PipelineWorker(Pipeline(list(processors)), params=PipelineParams(enable_metrics=metrics), cancel_on_idle_timeout=False)
    started = asyncio.Event()

    @worker.event_handler("on_pipeline_started")
    async def _on_started(*_: Any) -> None:
        started.set()

    async def feed() -> None:
        await asyncio.wait_for(started.wait(), 30)
        for item in script:
            if isinstance(item, (int, float)):
                await asyncio.sleep(item)
            else:
                await worker.queue_frame(item)
        await worker.queue_frame(EndFrame())

    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    await asyncio.wait_for(asyncio.gather(runner.run(), feed()), 120)


def images_with_audio(frames: list[tuple[float, Frame]]) -> list[tuple[int, bool]]:
    """(position, followed by TTS audio) for each output image (metrics frames in between do not count)."""
    out = []
    for k, (_, f) in enumerate(frames):
        if isinstance(f, OutputImageRawFrame):
            nxt = next((g for _, g in frames[k + 1 :] if not isinstance(g, MetricsFrame)), None)
            out.append((k, isinstance(nxt, TTSAudioRawFrame)))
    return out


def test_processor_passes_pipecat_type_checks(avatar):
    service = TalkingHeadVideoService(avatar)
    assert isinstance(service, FrameProcessor)
    assert service.video_size == (256, 256) and service.fps == FPS
    assert service.can_generate_metrics()


@pytest.mark.slow
def test_tts_audio_becomes_synced_frames(avatar, speech):
    """Audio in → one image per 40 ms of it, each followed by its audio; stop frame after the last; idle after."""
    sink = Sink()
    service = TalkingHeadVideoService(avatar)
    script = [0.3, *tts_frames(speech.samples, speech.sample_rate), speech.duration + 0.8]  # then EndFrame
    asyncio.run(run_pipeline([service, sink], script))
    frames = sink.frames
    assert isinstance(frames[0][1], StartFrame)
    images = images_with_audio(frames)
    speaking = [k for k, with_audio in images if with_audio]
    expected = speech.duration * FPS
    assert abs(len(speaking) - expected) <= 1, (len(speaking), expected)
    media = [f for _, f in frames if isinstance(f, (OutputImageRawFrame, TTSAudioRawFrame))]
    first = next(i for i, f in enumerate(media) if isinstance(f, TTSAudioRawFrame)) - 1
    pairs = media[first : first + 2 * len(speaking)]
    assert [type(f) for f in pairs] == [OutputImageRawFrame, TTSAudioRawFrame] * len(speaking), "image, audio, ..."
    assert all(f.sync_with_audio and f.format == "RGB" and f.size == (256, 256) for _, f in frames
               if isinstance(f, OutputImageRawFrame))
    audio = [f for _, f in frames if isinstance(f, TTSAudioRawFrame)]
    assert all(a.sample_rate == 24000 and a.num_frames == 960 for a in audio)  # the pipeline's output rate
    got = np.concatenate([np.frombuffer(a.audio, np.int16) for a in audio]).astype(np.float32) / 32768
    ref = speech.resample(24000).samples
    np.testing.assert_allclose(got[: len(ref)], ref, atol=2e-3)  # the same speech, resampled once
    stops = [k for k, (_, f) in enumerate(frames) if isinstance(f, TTSStoppedFrame)]
    last_audio = max(k for k, (_, f) in enumerate(frames) if isinstance(f, TTSAudioRawFrame))
    assert len(stops) == 1 and stops[0] > last_audio, "the stop frame follows the utterance's last audio"
    assert not any(isinstance(f, OutputImageRawFrame) for _, f in frames[last_audio + 1 : stops[0]])
    starts = [k for k, (_, f) in enumerate(frames) if isinstance(f, TTSStartedFrame)]
    assert starts and starts[0] < speaking[0]
    idle_after = [k for k, with_audio in images if not with_audio and k > stops[0]]
    assert len(idle_after) >= 5, "idles between utterances"
    # idle frames flow at the stream fps (after the first max_lead went out at once)
    t_idle = [frames[k][0] for k in idle_after]
    rate = (len(t_idle) - 1) / (t_idle[-1] - t_idle[0])
    assert 0.6 * FPS <= rate <= 1.4 * FPS, rate
    # per-utterance latency: Pipecat's TTFB metric and our own
    ttfb = [d for _, f in frames if isinstance(f, MetricsFrame) for d in f.data if isinstance(d, TTFBMetricsData)]
    assert any(d.processor == service.name and 0 < d.value < 1.0 for d in ttfb), ttfb
    (utterance,) = service.utterances
    assert utterance.status == "done" and utterance.metrics.first_frame_s < 1.0
    assert utterance.metrics.av_drift_samples == 0


@pytest.mark.slow
def test_interruption_returns_to_idle(avatar, speech):
    sink = Sink()
    service = TalkingHeadVideoService(avatar)
    long = np.tile(speech.samples, 3)
    script = [0.2, *tts_frames(long, speech.sample_rate), 0.8, InterruptionFrame(), 0.8]
    asyncio.run(run_pipeline([service, sink], script))
    frames = sink.frames
    (cut,) = [k for k, (_, f) in enumerate(frames) if isinstance(f, InterruptionFrame)]
    before = [w for k, w in images_with_audio(frames) if k < cut]
    after = [w for k, w in images_with_audio(frames) if k > cut]
    assert sum(before) >= 10, "speech was playing"
    assert sum(after) <= 1, f"{sum(after)} speech frames after the interruption"
    assert len(after) >= 10 and not any(after[1:]), "back to idle"
    assert not any(isinstance(f, TTSStoppedFrame) for k, (_, f) in enumerate(frames) if k > cut)
    assert service.utterances[-1].status == "interrupted"


class ListTransport(BaseOutputTransport):
    """Pipecat's real output transport logic, writing into lists at real-time speed."""

    def __init__(self, params: TransportParams) -> None:
        super().__init__(params)
        self.audio_written = 0  # samples at the transport's rate
        self.video: list[tuple[int, bytes]] = []  # (audio samples written so far, image)

    async def start(self, frame: StartFrame) -> None:
        await super().start(frame)
        await self.set_transport_ready(frame)

    async def write_audio_frame(self, frame: Any) -> bool:
        if not self.audio_written:  # a network hiccup at the start: 0.4 s of audio backs up in the queue
            await asyncio.sleep(0.4)
        await asyncio.sleep(frame.num_frames / frame.sample_rate)  # a real sink plays in real time
        self.audio_written += frame.num_frames
        return True

    async def write_video_frame(self, frame: OutputImageRawFrame) -> bool:
        self.video.append((self.audio_written, frame.image))
        return True


@pytest.mark.slow
def test_output_transport_shows_each_image_with_its_audio(avatar, speech):
    """Through a real BaseOutputTransport: the image on screen is the one whose audio is playing.

    The transport's first write stalls for 0.4 s, so audio backs up in its queue; images pushed
    without ``sync_with_audio`` would then run 10 frames ahead of the voice.
    """
    service = TalkingHeadVideoService(avatar)
    width, height = service.video_size
    transport = ListTransport(TransportParams(audio_out_enabled=True, audio_out_sample_rate=24000, video_out_enabled=True,
                                              video_out_width=width, video_out_height=height, video_out_framerate=FPS))
    tap = Sink()  # what the service hands the transport
    asyncio.run(run_pipeline([service, tap, transport], [0.3, *tts_frames(speech.samples, speech.sample_rate), 2.4]))
    # where each speech image sits in the audio: image k of the utterance covers samples [k*960, (k+1)*960)
    frames = tap.frames
    position: dict[bytes, list[int]] = {}
    k = 0
    for j, with_audio in images_with_audio(frames):
        if with_audio:
            position.setdefault(frames[j][1].image, []).append(k)
            k += 1
    assert k >= speech.duration * FPS - 1
    shown = [(written, position[img]) for written, img in transport.video if img in position]
    assert len(shown) >= 0.8 * k, (len(shown), k)  # the video task samples the current image at 25 fps
    first_audio = min(w for w, _ in shown) if shown else 0
    errors = []
    for written, ks in shown:
        playing = (written - first_audio) / 960  # frames of this utterance's audio sent so far
        errors.append(min(abs(playing - kk) for kk in ks))
    assert max(errors) <= 1, errors  # (measured here: 0 for all 40 frames)
