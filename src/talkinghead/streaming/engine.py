"""The stream engine: speech segments in, :class:`~talkinghead.values.AVChunk` out, on one clock.

Producers (a TTS worker, an app pushing audio) queue *segments* of speech from any thread; one
consumer thread calls :meth:`StreamEngine.produce` to get the next chunk. Speech is played segment
after segment; when none is queued the chunks are idle frames with silence. Every chunk holds
exactly ``samples_per_frame`` samples per frame, so frame and sample counters never drift apart.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import StageError
from ..values import Audio, AVChunk, ChunkKind
from .clock import StreamClock

log = logging.getLogger(__name__)

__all__ = ["Segment", "StreamEngine"]

_ids = itertools.count(1)


@dataclass(eq=False)
class Segment:
    """A run of speech played without a gap: one sentence of an answer, or one segment of pushed speech.

    Attributes:
        text: what is said (the caption), when known.
        turn: the conversation turn it belongs to.
        first_frame: global index of its first frame once it started playing.
        frames_played: frames of it emitted so far.
        ended: no more audio will be appended.
        finished: every frame of it was emitted.
        dropped: it was cleared before it finished.
    """

    text: str | None = None
    turn: int | None = None
    id: int = field(default_factory=lambda: next(_ids))
    first_frame: int | None = None
    frames_played: int = 0
    samples_in: int = 0
    ended: bool = False
    finished: bool = False
    dropped: bool = False
    on_start: Callable[[Segment, int], None] | None = field(default=None, repr=False)
    on_finish: Callable[[Segment, int], None] | None = field(default=None, repr=False)
    _pieces: list[Audio] = field(default_factory=list, repr=False)


class StreamEngine:
    """Turns queued speech segments into an endless run of A/V chunks.

    Args:
        stream: the animator's per-stream state (:class:`~talkinghead.stages.AnimatorStream`).
        clock: fps and sample rate of the stream.
        enhancer: optional :class:`~talkinghead.stages.Enhancer` run on every chunk.

    Thread safety: :meth:`open_segment`, :meth:`append`, :meth:`end_segment` and :meth:`clear` may
    be called from any thread; :meth:`produce` from one consumer thread at a time. Rendering happens
    outside the engine's lock, so a :meth:`clear` never waits for a frame to render.
    """

    def __init__(self, stream: Any, clock: StreamClock, *, enhancer: Any = None) -> None:
        self.stream = stream
        self.clock = clock
        self.enhancer = enhancer
        # per-stream enhancer state (e.g. GFPGAN's face tracking) belongs to this stream
        self._enhancer_state = enhancer.new_state() if enhancer is not None and hasattr(enhancer, "new_state") else None
        self.spf = clock.samples_per_frame
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._queue: deque[Segment] = deque()
        self._current: Segment | None = None
        self._clear_pending = False
        self._out = np.zeros(0, np.float32)  # samples pushed to the animator, not yet emitted
        self.render_seconds = 0.0  # time spent rendering (animator + enhancer), for metrics

    @property
    def next_frame(self) -> int:
        """Global index of the next frame :meth:`produce` returns."""
        return self.stream.next_frame

    # -- producers (any thread) ----------------------------------------------------------------
    def open_segment(
        self,
        *,
        text: str | None = None,
        turn: int | None = None,
        on_start: Callable[[Segment, int], None] | None = None,
        on_finish: Callable[[Segment, int], None] | None = None,
    ) -> Segment:
        """Queue a new, empty segment (played after every segment queued before it)."""
        seg = Segment(text=text, turn=turn, on_start=on_start, on_finish=on_finish)
        with self._lock:
            self._queue.append(seg)
            self._changed.notify_all()
        return seg

    def append(self, segment: Segment, audio: Audio) -> None:
        """Add speech (at the stream's sample rate) to ``segment``."""
        if audio.sample_rate != self.clock.sample_rate:
            raise ValueError(f"audio at {audio.sample_rate} Hz pushed into a {self.clock.sample_rate} Hz stream")
        with self._lock:
            if segment.ended:
                raise ValueError("cannot append to a segment that has ended")
            if not segment.dropped and len(audio.samples):
                segment._pieces.append(audio)
                segment.samples_in += len(audio.samples)
            self._changed.notify_all()

    def end_segment(self, segment: Segment) -> None:
        """No more audio for ``segment``: its last frame is padded with silence."""
        with self._lock:
            segment.ended = True
            self._changed.notify_all()

    def say(self, audio: Audio, **kwargs: Any) -> Segment:
        """Queue a whole segment at once (``kwargs`` as for :meth:`open_segment`)."""
        seg = self.open_segment(**kwargs)
        self.append(seg, audio)
        self.end_segment(seg)
        return seg

    def clear(self, turn: int | None = None) -> list[Segment]:
        """Drop speech that has not been played: every segment, or only those of ``turn``.

        Returns the dropped segments (a segment cut while playing is among them).
        """
        with self._lock:
            dropped = [s for s in self._queue if turn is None or s.turn == turn]
            self._queue = deque(s for s in self._queue if s not in dropped)
            cur = self._current
            if cur is not None and (turn is None or cur.turn == turn):
                dropped.insert(0, cur)
                self._clear_pending = True
            for s in dropped:
                s.dropped = True
            self._changed.notify_all()
        return dropped

    def has_speech(self) -> bool:
        """Whether speech is playing or queued."""
        with self._lock:
            return self._current is not None or bool(self._queue)

    def wait(self, timeout: float) -> None:
        """Block until a producer changes something, or ``timeout`` seconds pass."""
        with self._lock:
            self._changed.wait(timeout)

    def notify(self) -> None:
        """Wake a consumer blocked in :meth:`wait`."""
        with self._lock:
            self._changed.notify_all()

    # -- the consumer --------------------------------------------------------------------------
    def produce(self, max_frames: int, *, idle: bool = True, force: bool = False, idle_kind: ChunkKind = "idle") -> AVChunk | None:
        """The next chunk of at most ``max_frames`` frames, or None when there is nothing to emit yet.

        Args:
            idle: emit idle frames when no speech is queued (False: return None instead).
            force: never return None: when speech is queued but its audio has not arrived, emit a
                frame of silence inside it (a live stream must not stall).
            idle_kind: ``"idle"`` or ``"listening"`` for idle chunks.
        """
        stream = self.stream
        with self._lock:
            if self._clear_pending:
                stream.clear()
                self._out = np.zeros(0, np.float32)
                self._current = None
                self._clear_pending = False
            seg = self._current
            if seg is None and self._queue:
                seg = self._current = self._queue.popleft()
            pieces: list[Audio] = []
            ended = False
            if seg is not None:
                pieces, seg._pieces = seg._pieces, []
                ended = seg.ended
        if seg is None:
            if not idle:
                return None
            return self._emit(max_frames, None, idle_kind)
        for piece in pieces:
            stream.push(piece)
            self._out = np.concatenate([self._out, piece.samples])
        if ended and not getattr(seg, "_stream_ended", False):
            stream.end_speech()
            seg._stream_ended = True  # type: ignore[attr-defined]
        pending, ready = stream.pending(), stream.ready()
        if ended and pending == 0:  # an empty segment, or every frame already out
            self._finish(seg, stream.next_frame)
            return self.produce(max_frames, idle=idle, force=force, idle_kind=idle_kind)
        n = min(max_frames, ready)
        if n == 0:
            if not force:
                return None
            if pending == 0:  # underrun: insert silence to complete one frame of the segment
                fill = np.zeros(self.spf - len(self._out) % self.spf, np.float32)
                stream.push(Audio(fill, self.clock.sample_rate))
                self._out = np.concatenate([self._out, fill])
                log.debug("stream underrun at frame %d: %d samples of silence", stream.next_frame, len(fill))
            n = 1
        return self._emit(n, seg, "speech")

    def _emit(self, n: int, seg: Segment | None, kind: ChunkKind) -> AVChunk:
        stream = self.stream
        first = stream.next_frame
        t0 = time.perf_counter()
        chunk = stream.render(n)
        if len(chunk) != n or chunk.start != first:
            raise StageError("animator", "stream", f"rendered frames {chunk.start}..+{len(chunk)}, expected {first}..+{n}")
        if self.enhancer is not None:
            state = self._enhancer_state
            enhanced = self.enhancer.enhance(chunk) if state is None else self.enhancer.enhance(chunk, state=state)
            if len(enhanced) != n:
                raise StageError("enhancer", getattr(self.enhancer, "name", "?"), f"returned {len(enhanced)} frames for {n}")
            chunk = enhanced
        self.render_seconds += time.perf_counter() - t0
        need = n * self.spf
        if seg is None:
            samples = np.zeros(need, np.float32)
        else:
            samples = self._out[:need]
            if len(samples) < need:  # the padded end of the segment
                samples = np.concatenate([samples, np.zeros(need - len(samples), np.float32)])
            self._out = self._out[need:]
        end = False
        if seg is not None:
            if seg.first_frame is None:
                seg.first_frame = first
                if seg.on_start is not None:
                    seg.on_start(seg, first)
            seg.frames_played += n
            with self._lock:
                end = seg.ended and stream.pending() == 0 and not seg._pieces and not self._clear_pending
            if end:
                self._finish(seg, first + n)
        return AVChunk(
            frames=chunk.frames,
            samples=samples,
            sample_rate=self.clock.sample_rate,
            fps=self.clock.fps,
            first_frame=first,
            kind=kind,
            text=seg.text if seg is not None else None,
            segment_end=end,
            turn=seg.turn if seg is not None else None,
        )

    def _finish(self, seg: Segment, frame: int) -> None:
        with self._lock:
            if self._current is seg:
                self._current = None
            seg.finished = True
        self._out = np.zeros(0, np.float32)
        if seg.on_finish is not None:
            seg.on_finish(seg, frame)
