"""Make any backend stream: TTS sentence by sentence, LLM piece by piece, animators frame by frame.

Backends that stream natively (``synthesize_stream``, ``stream``, ``open_stream``) are used as they
are; every other backend, built-in or third-party, is wrapped here, so a plug-in that implements only
the basic stage protocol works in live sessions too.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from ..errors import StageError
from ..stages import check_render, frame_count, synthesize_sentences
from ..values import Audio, ChatMessage, FrameChunk, PhonemeTiming, SpokenSentence, VoiceProfile
from .clock import StreamClock

log = logging.getLogger(__name__)

__all__ = ["ClipAnimatorStream", "open_animator_stream", "stream_answer", "stream_speech"]


# -- TTS -----------------------------------------------------------------------------------------
def stream_speech(tts: Any, text: str, *, voice: VoiceProfile | None = None) -> Iterator[SpokenSentence]:
    """Speak ``text`` sentence by sentence: each sentence's audio as soon as it is synthesised.

    Uses the backend's own ``synthesize_stream`` when it has one; otherwise calls its ``synthesize``
    once per sentence of :func:`~talkinghead.text.split_sentences`.
    """
    native = getattr(tts, "synthesize_stream", None)
    yield from (native(text, voice=voice) if callable(native) else synthesize_sentences(tts, text, voice=voice))


# -- LLM -----------------------------------------------------------------------------------------
def stream_answer(llm: Any, messages: Sequence[ChatMessage]) -> Iterator[str]:
    """The LLM's answer in pieces: its ``stream`` when it has the ``"stream"`` capability, else one piece."""
    if "stream" in getattr(llm, "capabilities", ()) and callable(getattr(llm, "stream", None)):
        yield from llm.stream(messages)
    else:
        yield llm.complete(messages)


# -- Animator ------------------------------------------------------------------------------------
def open_animator_stream(animator: Any, prepared: Any, *, clock: StreamClock, first_frame: int = 0, **options: Any):
    """An :class:`~talkinghead.stages.AnimatorStream` for any animator.

    A native ``open_stream`` is used when the animator has one; any other animator is wrapped in a
    :class:`ClipAnimatorStream` (``options`` go to it).
    """
    native = getattr(animator, "open_stream", None)
    if callable(native):
        return native(prepared, fps=clock.fps, sample_rate=clock.sample_rate, first_frame=first_frame)
    return ClipAnimatorStream(animator, prepared, clock=clock, first_frame=first_frame, **options)


class ClipAnimatorStream:
    """Streams an animator that only animates whole clips.

    Each speech segment (up to ``max_clip`` seconds of it) is animated as one clip, whose frames are
    handed out as the animator yields them. Idle frames come from a loop of the animator's own
    rendering of silence (``idle_seconds`` long, played forwards then backwards so it never jumps),
    computed once per stream.

    Args:
        animator: any :class:`~talkinghead.stages.Animator` (loaded).
        prepared: its ``prepare()`` result for the portrait.
        clock: the stream's clock.
        first_frame: global index of the first frame.
        idle_seconds: length of the idle loop.
        max_clip: longest clip; longer speech pushed without an end is cut into clips of this length.
    """

    def __init__(
        self,
        animator: Any,
        prepared: Any,
        *,
        clock: StreamClock,
        first_frame: int = 0,
        idle_seconds: float = 2.0,
        max_clip: float = 8.0,
    ) -> None:
        self.animator, self.prepared, self.clock = animator, prepared, clock
        self.spf = clock.samples_per_frame
        self.next_frame = int(first_frame)
        self.idle_frames = max(2, int(round(idle_seconds * float(clock.fps))))
        self.max_clip_frames = max(1, int(round(max_clip * float(clock.fps))))
        self._buf: list[np.ndarray] = []  # speech pushed but not yet cut into a clip
        self._buf_len = 0
        self._buf_phonemes: list[PhonemeTiming] = []
        self._clips: deque[list] = deque()  # [iterator, frames left to hand out, leftover frames]
        self._ended = True
        self._idle: np.ndarray | None = None

    # -- speech in ---------------------------------------------------------------------------
    def push(self, audio: Audio) -> None:
        if audio.sample_rate != self.clock.sample_rate:
            audio = audio.resample(self.clock.sample_rate)
        offset = self._buf_len / self.clock.sample_rate
        self._buf_phonemes.extend(PhonemeTiming(p.phoneme, p.start + offset, p.end + offset) for p in audio.phonemes)
        self._buf.append(audio.samples)
        self._buf_len += len(audio.samples)
        self._ended = False
        while self._buf_len >= self.max_clip_frames * self.spf:
            self._cut(self.max_clip_frames)

    def end_speech(self) -> None:
        if self._buf_len:
            self._cut(-(-self._buf_len // self.spf))
        self._ended = True

    def pending(self) -> int:
        queued = sum(c[1] for c in self._clips)
        extra = -(-self._buf_len // self.spf) if self._ended else self._buf_len // self.spf
        return queued + extra

    def ready(self) -> int:
        return sum(c[1] for c in self._clips)

    def clear(self) -> None:
        for clip in self._clips:
            close = getattr(clip[0], "close", None)
            if close is not None:
                close()
        self._clips.clear()
        self._buf, self._buf_len, self._buf_phonemes = [], 0, []
        self._ended = True

    def close(self) -> None:
        self.clear()
        self._idle = None

    # -- frames out ----------------------------------------------------------------------------
    def render(self, n: int) -> FrameChunk:
        n = check_render(n, self.pending(), self._ended)
        if n > self.ready() and self._buf_len >= self.spf:
            self._cut(self._buf_len // self.spf)  # render what is there now rather than wait for more
        out: list[np.ndarray] = []
        need = n
        while need and self._clips:
            got = self._take(self._clips[0], need)
            out.append(got)
            need -= len(got)
            if self._clips[0][1] == 0:
                self._clips.popleft()
        if need:
            out.append(self._idle_frames(self.next_frame + n - need, need))
        frames = np.concatenate(out) if len(out) > 1 else out[0]
        chunk = FrameChunk(frames, self.next_frame)
        self.next_frame += n
        return chunk

    # -- internals -----------------------------------------------------------------------------
    def _cut(self, frames: int) -> None:
        """Start animating the first ``frames`` frames of the buffered speech as one clip."""
        samples = np.concatenate(self._buf) if self._buf else np.zeros(0, np.float32)
        take = frames * self.spf
        clip = np.zeros(take, np.float32)
        clip[: min(take, len(samples))] = samples[:take]
        limit = take / self.clock.sample_rate
        phonemes = tuple(
            PhonemeTiming(p.phoneme, p.start, min(p.end, limit)) for p in self._buf_phonemes if p.start < limit
        )
        rest = samples[take:]
        self._buf = [rest] if len(rest) else []
        self._buf_len = len(rest)
        self._buf_phonemes = [
            PhonemeTiming(p.phoneme, max(0.0, p.start - limit), p.end - limit) for p in self._buf_phonemes if p.end > limit
        ]
        audio = Audio(clip, self.clock.sample_rate, phonemes=phonemes)
        self._clips.append([self._animate(audio, frames), frames, None])

    def _animate(self, audio: Audio, frames: int) -> Iterator[np.ndarray]:
        got = 0
        for chunk in self.animator.animate(self.prepared, audio, fps=float(self.clock.fps)):
            got += len(chunk)
            yield chunk.frames
        if got != frames or frames != frame_count(audio.duration, float(self.clock.fps)):
            raise StageError("animator", getattr(self.animator, "name", "?"), f"produced {got} frames, expected {frames}")

    def _take(self, clip: list, n: int) -> np.ndarray:
        it, left, leftover = clip
        parts, have = [], 0
        if leftover is not None and len(leftover):
            parts.append(leftover[:n])
            have = len(parts[0])
            clip[2] = leftover[have:]
        while have < min(n, left):
            try:
                frames = next(it)
            except StopIteration:
                raise StageError(
                    "animator", getattr(self.animator, "name", "?"), f"stopped {left - have} frames before the clip's end"
                ) from None
            use = frames[: n - have]
            parts.append(use)
            have += len(use)
            clip[2] = frames[len(use) :]
        clip[1] = left - have
        if clip[1] == 0:
            for _ in it:  # let the animator finish (and check its frame count)
                pass
        return np.concatenate(parts) if len(parts) > 1 else parts[0]

    def _idle_frames(self, start: int, n: int) -> np.ndarray:
        if self._idle is None:
            silence = Audio(np.zeros(self.idle_frames * self.spf, np.float32), self.clock.sample_rate)
            chunks = [c.frames for c in self.animator.animate(self.prepared, silence, fps=float(self.clock.fps))]
            self._idle = np.concatenate(chunks)
        loop = len(self._idle)
        period = max(1, 2 * loop - 2)
        idx = np.arange(start, start + n) % period
        idx = np.where(idx < loop, idx, period - idx)
        return self._idle[idx]
