"""A talkinghead avatar inside a Pipecat pipeline (``pip install 'talkinghead[pipecat]'``).

:class:`TalkingHeadVideoService` is a frame processor placed right after the TTS::

    Pipeline([transport.input(), stt, user_aggregator, llm, tts,
              TalkingHeadVideoService(avatar),              # here
              transport.output(), assistant_aggregator])

It consumes the TTS's ``TTSAudioRawFrame``s and emits, frame by frame, an ``OutputImageRawFrame``
followed by the ``TTSAudioRawFrame`` it covers. Every image is marked ``sync_with_audio``, so the
output transport queues it with the audio and shows it exactly when the audio before it has been
sent: lips and voice stay together however far ahead the frames were produced. Between utterances
it emits idle images (blinks, breathing) at the stream fps; an ``InterruptionFrame`` drops the
speech not yet handed out and the next image is idle. ``TTSStoppedFrame`` is held back until the
last frame of its utterance went out, so the transport's "bot stopped speaking" comes at the right
moment.

Set the output transport's video to the avatar's size and fps and leave ``video_out_is_live`` off
(the transport then shows each synced image at its audio position)::

    width, height = service.video_size
    TransportParams(audio_out_enabled=True, video_out_enabled=True, video_out_width=width,
                    video_out_height=height, video_out_framerate=25)

See ``docs/integrations.md`` for a complete example.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, MissingDependencyError
from ..streaming.clock import STREAM_SAMPLE_RATE, StreamClock, as_fps
from .bridge import SpeechDrivenStream, pcm16_bytes

try:
    from pipecat.frames.frames import (
        CancelFrame,
        EndFrame,
        Frame,
        InterruptionFrame,
        OutputImageRawFrame,
        StartFrame,
        TTSAudioRawFrame,
        TTSStoppedFrame,
    )
    from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
except ImportError as exc:  # pragma: no cover - exercised where pipecat-ai is missing
    raise MissingDependencyError("pipecat-ai", "pipecat", "the Pipecat avatar") from exc

if TYPE_CHECKING:
    from ..avatar import Avatar
    from ..streaming.events import TurnEnded

log = logging.getLogger(__name__)

__all__ = ["TalkingHeadVideoService"]


class TalkingHeadVideoService(FrameProcessor):
    """Pipecat frame processor: TTS audio in, lip-synced images with the same audio out.

    Args:
        avatar: any :class:`~talkinghead.Avatar` configuration (``animator="viseme"`` works offline;
            ``"sadtalker"`` when its weights are cached). Models load once per process; the
            session (per-stream state) opens on ``StartFrame``, in a worker thread.
        fps: video frame rate (default: the Avatar's stream fps, 25).
        sample_rate: rate of the audio frames re-emitted (default: the pipeline's
            ``audio_out_sample_rate`` when one frame covers a whole number of its samples, else 24000).
        max_lead: how far ahead of the wall clock frames are pushed (seconds); the output
            transport's audio queue holds that much.
        end_timeout: on ``EndFrame``, how long to wait for queued speech to finish (seconds).
        on_utterance: called with each utterance's :class:`~talkinghead.streaming.TurnEnded`
            (``metrics.first_frame_s``: first audio in → first frame out). With
            ``PipelineParams(enable_metrics=True)`` the same latency is also reported as this
            processor's TTFB metric.
        name: the processor's name in Pipecat's logs and metrics.
        **session_options: more :class:`~talkinghead.streaming.LiveSession` options.
    """

    def __init__(
        self,
        avatar: Avatar,
        *,
        fps: float | Fraction | None = None,
        sample_rate: int | None = None,
        max_lead: float = 0.3,
        end_timeout: float = 30.0,
        on_utterance: Callable[[TurnEnded], None] | None = None,
        name: str | None = None,
        **session_options: Any,
    ) -> None:
        super().__init__(name=name)
        self.avatar = avatar
        self.clock = StreamClock(as_fps(fps if fps is not None else avatar.stream_fps), sample_rate or STREAM_SAMPLE_RATE)
        self._sample_rate = sample_rate
        self.max_lead = max_lead
        self.end_timeout = end_timeout
        self.on_utterance = on_utterance
        self._session_options = session_options
        self._stream: SpeechDrivenStream | None = None
        self._pump: asyncio.Task[None] | None = None
        self._size: tuple[int, int] | None = None
        self._open = False  # audio was pushed since the last TTSStoppedFrame
        self._held: deque[Frame] = deque()  # TTSStoppedFrames waiting for their utterance's last frame
        self._contexts: deque[Any] = deque()  # TTS context ids of the queued utterances
        self._first_pending = False  # an utterance's first frame has not gone out yet
        self.frames_out = 0  # images pushed (speech and idle)
        self._utterances: deque[TurnEnded] = deque(maxlen=100)

    # -- what the transport needs to know -------------------------------------------------------
    @property
    def fps(self) -> Fraction:
        """Video frame rate."""
        return self.clock.fps

    @property
    def video_size(self) -> tuple[int, int]:
        """``(width, height)`` of the images (renders one frame the first time: call it before the pipeline runs)."""
        if self._size is None:
            self._size = SpeechDrivenStream(self.avatar, fps=self.clock.fps).frame_size()
        return self._size

    @property
    def utterances(self) -> list[TurnEnded]:
        """The recent utterances (status and metrics), oldest first."""
        return list(self._utterances)

    def can_generate_metrics(self) -> bool:
        return True

    # -- frames ------------------------------------------------------------------------------------
    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, StartFrame):
            await self.push_frame(frame, direction)
            await self._start(frame)
        elif isinstance(frame, EndFrame):
            await self._finish()
            await self.push_frame(frame, direction)
        elif isinstance(frame, CancelFrame):
            await self._stop()
            await self.push_frame(frame, direction)
        elif isinstance(frame, InterruptionFrame):
            await self._interrupt()
            await self.push_frame(frame, direction)
        elif direction == FrameDirection.DOWNSTREAM and isinstance(frame, TTSAudioRawFrame) and self._stream is not None:
            await self._speech(frame)
        elif direction == FrameDirection.DOWNSTREAM and isinstance(frame, TTSStoppedFrame) and self._open:
            self._open = False
            self._held.append(frame)
            assert self._stream is not None
            self._stream.end()
        else:
            await self.push_frame(frame, direction)

    async def _speech(self, frame: TTSAudioRawFrame) -> None:
        assert self._stream is not None
        if not self._open:
            self._open = True
            self._contexts.append(getattr(frame, "context_id", None))
            if not self._first_pending:
                self._first_pending = True
                await self.start_ttfb_metrics()
        self._stream.push(frame.audio, frame.sample_rate, frame.num_channels)

    async def _start(self, frame: StartFrame) -> None:
        if self._stream is not None:
            return
        rate = self._sample_rate or _fitting_rate(self.clock.fps, self._pipeline_out_rate(frame))
        stream = SpeechDrivenStream(
            self.avatar, fps=self.clock.fps, sample_rate=rate, max_lead=self.max_lead,
            on_utterance=self._utterance, **self._session_options,
        )
        await asyncio.to_thread(lambda: stream.session)  # loads the models and prepares the portrait
        self._stream = stream
        self._pump = self.create_task(self._run(stream), name=f"{self.name}::frames")

    def _utterance(self, event: TurnEnded) -> None:
        self._utterances.append(event)
        if self.on_utterance is not None:
            self.on_utterance(event)

    def _pipeline_out_rate(self, frame: StartFrame) -> int:
        setup = getattr(self, "_setup", None)  # Pipecat >= 1.8 keeps the rate in the processor's setup
        rate = getattr(setup, "audio_out_sample_rate", None)
        return int(rate) if rate else int(getattr(frame, "audio_out_sample_rate", 0) or 0)

    async def _run(self, stream: SpeechDrivenStream) -> None:
        rate = stream.sample_rate
        async for chunk in stream.chunks():
            if chunk.kind == "speech" and self._first_pending:
                self._first_pending = False
                await self.stop_ttfb_metrics()
            height, width = chunk.frames.shape[1:3]
            context = self._contexts[0] if self._contexts else None
            for image, samples in stream.frames_of(chunk):
                picture = OutputImageRawFrame(image=image.tobytes(), size=(width, height), format="RGB")
                picture.sync_with_audio = True  # shown when the audio before it has been sent
                await self.push_frame(picture)
                self.frames_out += 1
                if samples is not None:
                    audio = TTSAudioRawFrame(audio=pcm16_bytes(samples), sample_rate=rate, num_channels=1)
                    if context is not None:
                        audio.context_id = context
                    await self.push_frame(audio)
            if chunk.segment_end:
                if self._contexts:
                    self._contexts.popleft()
                if self._held:
                    await self.push_frame(self._held.popleft())

    async def _interrupt(self) -> None:
        if self._stream is not None:
            self._stream.clear()
        self._open = False
        self._held.clear()
        self._contexts.clear()
        if self._first_pending:
            self._first_pending = False
            cancel = getattr(self, "cancel_ttfb_metrics", None)  # Pipecat >= 1.4 (older: the base stops all metrics)
            if cancel is not None:
                await cancel()

    async def _finish(self) -> None:
        """EndFrame: let the queued speech play to its end (bounded), then stop."""
        stream = self._stream
        if stream is not None:
            if self._open:
                self._open = False
                stream.end()
            deadline = time.monotonic() + self.end_timeout
            while (stream.speaking or self._held) and time.monotonic() < deadline and self._pump and not self._pump.done():
                await asyncio.sleep(0.02)
        await self._stop()
        while self._held:  # (only when the end timed out)
            await self.push_frame(self._held.popleft())

    async def _stop(self) -> None:
        stream, self._stream = self._stream, None
        if self._pump is not None:
            await self.cancel_task(self._pump)
            self._pump = None
        if stream is not None:
            await asyncio.to_thread(stream.close)

    async def cleanup(self) -> None:
        await super().cleanup()
        await self._stop()


def _fitting_rate(fps: Fraction, rate: int) -> int:
    """``rate`` when one frame at ``fps`` covers a whole number of its samples, else the stream default."""
    if rate:
        try:
            StreamClock(fps, int(rate))
            return int(rate)
        except ConfigError:
            log.info("%d Hz does not divide into %s fps frames; the avatar's audio is %d Hz", rate, fps, STREAM_SAMPLE_RATE)
    return STREAM_SAMPLE_RATE
