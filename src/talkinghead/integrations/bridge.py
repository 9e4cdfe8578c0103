"""The part both framework adapters share: an Avatar's live stream driven by pushed speech.

A voice-agent framework synthesises speech itself and hands it over in pieces (LiveKit's
``push_audio``, Pipecat's ``TTSAudioRawFrame``), marks where an utterance ends, and clears what is
queued when the user interrupts. :class:`SpeechDrivenStream` maps those three calls onto a paced
:class:`~talkinghead.streaming.LiveSession` and hands out its :class:`~talkinghead.values.AVChunk`
s; each adapter only converts chunks into its framework's frame types. Nothing here imports a
framework, so this module is tested in every environment.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import AudioError, ConfigError
from ..streaming.clock import STREAM_SAMPLE_RATE, StreamClock, as_fps
from ..streaming.events import SessionEvent, TurnEnded
from ..values import AVChunk

if TYPE_CHECKING:
    from ..avatar import Avatar
    from ..streaming.session import LiveSession
    from ..streaming.turns import Turn

log = logging.getLogger(__name__)

__all__ = ["SpeechDrivenStream", "pcm16_bytes", "pcm16_samples"]

#: Interrupted turns remembered so that a chunk of theirs still in flight is dropped.
_KEEP_INTERRUPTED = 64


def pcm16_samples(data: Any, num_channels: int = 1) -> np.ndarray:
    """Interleaved 16-bit PCM (bytes, memoryview or an int16 array) as float32 mono in [-1, 1)."""
    if num_channels < 1:
        raise AudioError(f"num_channels must be at least 1, got {num_channels}")
    if isinstance(data, np.ndarray):
        x = data.astype(np.int16, copy=False).reshape(-1)
    else:
        raw = memoryview(data).cast("B")
        if len(raw) % 2:
            raise AudioError(f"16-bit PCM needs an even number of bytes, got {len(raw)}")
        x = np.frombuffer(raw, dtype=np.int16)
    if len(x) % num_channels:
        raise AudioError(f"{len(x)} samples do not split into {num_channels} channels")
    mono = x.reshape(-1, num_channels).astype(np.float32).mean(axis=1) if num_channels > 1 else x.astype(np.float32)
    return mono / 32768.0


def pcm16_bytes(samples: np.ndarray) -> bytes:
    """Float samples in [-1, 1] as 16-bit PCM bytes (the exact inverse of :func:`pcm16_samples`)."""
    return np.clip(np.round(np.asarray(samples, np.float32) * 32768.0), -32768, 32767).astype(np.int16).tobytes()


class SpeechDrivenStream:
    """An Avatar's endless, paced A/V stream that animates speech pushed by a voice-agent framework.

    Idle frames (blinks, breathing, small head motion) flow while nothing is said; pushed speech is
    animated as it arrives and comes back, resampled to the stream's rate, in the chunks with the
    frames it covers. Chunks are paced to the wall clock, at most ``max_lead`` seconds ahead of it
    (the framework's own output buffers absorb that lead).

    Args:
        avatar: the :class:`~talkinghead.Avatar` (any configuration; its models load once and are
            shared by every stream of the process).
        fps: frames per second (default: the Avatar's stream fps, 25).
        sample_rate: audio rate of the chunks (default 24000).
        max_lead: how far ahead of the wall clock chunks may be handed out (seconds).
        chunk_frames: frames per chunk (1: the quickest interruptions).
        underrun_wait: when speech is late (a burst of pieces still being pushed, a slow TTS), wait
            this long for it before filling the gap with silence: an utterance then comes back
            exactly as long as its audio.
        on_utterance: called with the :class:`~talkinghead.streaming.TurnEnded` event of every
            utterance (status and :class:`~talkinghead.streaming.TurnMetrics`: ``first_frame_s`` is
            the time from its first pushed audio to its first frame).
        **session_options: more options of :class:`~talkinghead.streaming.LiveSession` (``voice``,
            ``vad``...).

    Thread safety: :meth:`push`, :meth:`end` and :meth:`clear` may be called from any thread (an
    event loop's, typically); :meth:`chunks` renders in a worker thread.
    """

    def __init__(
        self,
        avatar: Avatar,
        *,
        fps: float | Fraction | None = None,
        sample_rate: int | None = None,
        max_lead: float = 0.2,
        chunk_frames: int = 1,
        underrun_wait: float = 1.0,
        on_utterance: Callable[[TurnEnded], None] | None = None,
        **session_options: Any,
    ) -> None:
        if max_lead < 0:
            raise ConfigError(f"max_lead must not be negative, got {max_lead}")
        self.avatar = avatar
        self.clock = StreamClock(as_fps(fps if fps is not None else avatar.stream_fps), sample_rate or STREAM_SAMPLE_RATE)
        self.max_lead = float(max_lead)
        self.chunk_frames = int(chunk_frames)
        self.underrun_wait = float(underrun_wait)
        self.on_utterance = on_utterance
        self.utterances: deque[TurnEnded] = deque(maxlen=100)
        self._session_options = session_options
        self._session: LiveSession | None = None
        self._size: tuple[int, int] | None = None
        self._interrupted: deque[int] = deque(maxlen=_KEEP_INTERRUPTED)
        self._lock = threading.Lock()
        self._closed = False

    # -- properties ------------------------------------------------------------------------------
    @property
    def fps(self) -> Fraction:
        """Frames per second."""
        return self.clock.fps

    @property
    def sample_rate(self) -> int:
        """Audio rate of the chunks."""
        return self.clock.sample_rate

    @property
    def samples_per_frame(self) -> int:
        """Audio samples one frame covers (960 at 25 fps and 24 kHz)."""
        return self.clock.samples_per_frame

    @property
    def session(self) -> LiveSession:
        """The live session (opened on first use; loads the models and prepares the portrait)."""
        with self._lock:
            if self._closed:
                raise ConfigError("this avatar stream is closed")
            if self._session is None:
                self._session = self.avatar.live(
                    fps=self.clock.fps,
                    sample_rate=self.clock.sample_rate,
                    realtime=True,
                    max_lead=self.max_lead,
                    underrun_wait=self.underrun_wait,
                    chunk_frames=self.chunk_frames,
                    turn_timeout=None,
                    on_event=self._on_event,
                    **self._session_options,
                )
            return self._session

    @property
    def speaking(self) -> bool:
        """Whether pushed speech is playing or queued."""
        return self._session is not None and self._session.speaking

    def frame_size(self) -> tuple[int, int]:
        """``(width, height)`` of the frames (renders one frame of a private session the first time)."""
        if self._size is None:
            probe = self.avatar.live(fps=self.clock.fps, sample_rate=self.clock.sample_rate, chunk_frames=1)
            try:
                chunk = probe.next_chunk()
            finally:
                probe.close()
            assert chunk is not None
            h, w = chunk.frames.shape[1:3]
            self._size = (int(w), int(h))
        return self._size

    # -- the framework's three calls -------------------------------------------------------------
    def push(self, pcm: Any, sample_rate: int, num_channels: int = 1) -> None:
        """Add a piece of the current utterance: 16-bit PCM (bytes or int16 array) or float samples."""
        if isinstance(pcm, np.ndarray) and np.issubdtype(pcm.dtype, np.floating):
            samples = pcm.reshape(-1, num_channels).mean(axis=1) if num_channels > 1 else pcm.reshape(-1)
        else:
            samples = pcm16_samples(pcm, num_channels)
        if len(samples):
            self.session.push_speech(samples, int(sample_rate))

    def end(self) -> None:
        """The utterance is complete (its last frame is padded with silence)."""
        if self._session is not None:
            self._session.end_speech()

    def clear(self) -> Turn | None:
        """Drop the speech not yet handed out and return to idle (an interruption).

        Returns the interrupted utterance's turn (None when nothing was being said).
        """
        if self._session is None:
            return None
        turn = self._session.interrupt()
        if turn is not None:
            self._interrupted.append(turn.id)
        return turn

    # -- the chunk stream --------------------------------------------------------------------------
    async def chunks(self) -> AsyncIterator[AVChunk]:
        """The stream's chunks, paced to the wall clock; ends when the stream is closed.

        A speech chunk of an utterance interrupted while it was being rendered is dropped, so
        nothing of a cleared utterance comes after :meth:`clear`.
        """
        session = self.session
        while True:
            chunk = await asyncio.to_thread(session.next_chunk)
            if chunk is None:
                return
            if chunk.kind == "speech" and chunk.turn in self._interrupted:
                continue
            yield chunk

    def frames_of(self, chunk: AVChunk) -> list[tuple[np.ndarray, np.ndarray | None]]:
        """The chunk frame by frame: ``(rgb_frame, samples_it_covers)``; samples are None unless speech."""
        spf = self.samples_per_frame
        speech = chunk.kind == "speech"
        return [
            (chunk.frames[i], chunk.samples[i * spf : (i + 1) * spf] if speech else None) for i in range(chunk.n_frames)
        ]

    # -- metrics -----------------------------------------------------------------------------------
    def _on_event(self, event: SessionEvent) -> None:
        if not isinstance(event, TurnEnded) or event.metrics is None:
            return
        m = event.metrics
        self.utterances.append(event)
        first = f"{1000 * m.first_frame_s:.0f} ms" if m.first_frame_s is not None else "-"
        log.info(
            "utterance %d %s: first frame %s after its first audio, %d frames (%.2f s), render %.2fx real time",
            event.turn, event.status, first, m.frames, m.frames / float(self.clock.fps), m.rtf or 0.0,
        )
        if self.on_utterance is not None:
            try:
                self.on_utterance(event)
            except Exception:  # a failing listener must not break the stream
                log.exception("on_utterance callback failed")

    # -- lifetime ----------------------------------------------------------------------------------
    def close(self) -> None:
        """End the stream (:meth:`chunks` returns) and release its per-stream state."""
        with self._lock:
            self._closed = True
            session, self._session = self._session, None
        if session is not None:
            session.close()

    def __repr__(self) -> str:
        return f"<SpeechDrivenStream {float(self.fps):g} fps {self.sample_rate} Hz>"
