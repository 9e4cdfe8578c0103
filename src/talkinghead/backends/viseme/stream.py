"""Live streams of the viseme animator: the drive computed over sliding windows of the stream's audio.

Every curve of the drive is a function of the seed, the global frame index and the audio within
:data:`~.timeline.DRIVE_CONTEXT_S` before and :data:`~.timeline.DRIVE_LOOKAHEAD_S` after a frame
(see :mod:`.timeline`), so frames rendered a few at a time equal the same speech rendered as one
clip, and idle frames (silence: blinks, saccades, breathing head motion, mouth closed) continue the
motion without a jump. The expression lives on the stream's clock: an :class:`ExpressionTrack` that
``emotion="auto"`` extends with each sentence's sentiment and :meth:`VisemeStream.set_expression`
with anything else (the listening face while the user speaks).
"""

from __future__ import annotations

from collections import deque
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import numpy as np

from ...expression import Expression, ExpressionTrack, expression_from_text, resolve_emotion
from ...stages.animator import check_render
from ...values import Audio, FrameChunk, PhonemeTiming
from .timeline import DRIVE_CONTEXT_S, DRIVE_LOOKAHEAD_S

if TYPE_CHECKING:
    from .animator import PreparedPortrait, VisemeAnimator

__all__ = ["VisemeStream"]

#: Frames of drive computed at once when the audio allows (fewer windows of context to pay for).
DRIVE_BLOCK = 25


class VisemeStream:
    """The per-stream state of :class:`~.animator.VisemeAnimator` (see :class:`~talkinghead.stages.AnimatorStream`).

    Args:
        emotion: the expression (default: the animator's); ``"auto"`` follows each pushed
            sentence's ``Audio.text``.
    """

    def __init__(
        self,
        animator: VisemeAnimator,
        prepared: PreparedPortrait,
        *,
        fps: Fraction,
        sample_rate: int,
        first_frame: int,
        emotion: Any = None,
    ) -> None:
        from .render import FrameRenderer

        self.animator, self.prepared = animator, prepared
        self.fps = Fraction(fps)
        self.sample_rate = int(sample_rate)
        spf = self.sample_rate / self.fps
        if spf.denominator != 1:
            raise ValueError(f"{sample_rate} Hz at {fps} fps is not a whole number of samples per frame")
        self.spf = int(spf)
        self.next_frame = int(first_frame)
        self._renderer = FrameRenderer(prepared.image, prepared.fields, prepared.look, seed=animator.seed)
        self._context = int(np.ceil(DRIVE_CONTEXT_S * float(self.fps)))
        self._lookahead = int(np.ceil(DRIVE_LOOKAHEAD_S * float(self.fps)))
        spec = animator.emotion if emotion is None else emotion
        self._auto = spec == "auto"
        self.track: ExpressionTrack = resolve_emotion(None if self._auto else spec)
        # audio of the stream from global sample _base on: context, then pending speech
        self._base = self.next_frame * self.spf
        self._audio = np.zeros(0, np.float32)
        self._speech_end = self._base
        self._ended = True
        self._phonemes: deque[tuple[str, float, float]] = deque()  # global seconds
        self._drive: Any = None  # the computed drive of the next frames (a Drive window)

    # -- speech in ---------------------------------------------------------------------------
    def _cursor(self) -> int:
        return self.next_frame * self.spf

    def push(self, audio: Audio) -> None:
        if audio.sample_rate != self.sample_rate:
            audio = audio.resample(self.sample_rate)
        start = max(self._speech_end, self._cursor())
        self._ensure(start)
        self._audio = np.concatenate([self._audio[: start - self._base], audio.samples])
        offset = start / self.sample_rate
        for p in audio.phonemes:
            self._phonemes.append((p.phoneme, p.start + offset, p.end + offset))
        self._speech_end = start + len(audio.samples)
        self._ended = False
        if self._auto and audio.text:
            self.set_expression(expression_from_text(audio.text), frame=start // self.spf)
        self._drive = None  # the frames ahead now have speech

    def end_speech(self) -> None:
        if self._speech_end > self._cursor():
            self._speech_end = -(-self._speech_end // self.spf) * self.spf
            self._ensure(self._speech_end)
        self._ended = True
        self._drive = None

    def pending(self) -> int:
        left = self._speech_end - self._cursor()
        if left <= 0:
            return 0
        return -(-left // self.spf) if self._ended else left // self.spf

    def ready(self) -> int:
        pending = self.pending()
        return pending if self._ended else max(0, pending - self._lookahead)

    def clear(self) -> None:
        cursor = self._cursor()
        if self._speech_end > cursor:
            self._audio = self._audio[: cursor - self._base]
            self._speech_end = cursor
        limit = cursor / self.sample_rate
        self._phonemes = deque(p for p in self._phonemes if p[1] < limit)
        self._ended = True
        self._drive = None

    @property
    def follows_text(self) -> bool:
        """Whether the expression follows the words (``emotion="auto"``): spoken and heard."""
        return self._auto

    def set_expression(self, expression: Expression, *, frame: int | None = None) -> None:
        """Ease towards ``expression`` from ``frame`` on (default: the next frame), e.g. the listening face."""
        frame = self.next_frame if frame is None else max(int(frame), self.next_frame)
        self.track = self.track.then(float(frame / self.fps), expression)
        self._drive = None

    def close(self) -> None:
        self._audio = np.zeros(0, np.float32)
        self._phonemes.clear()
        self._drive = None

    # -- frames out ----------------------------------------------------------------------------
    def render(self, n: int) -> FrameChunk:
        n = check_render(n, self.pending(), self._ended)
        f0 = self.next_frame
        drive = self._drive
        if drive is None or drive.first_frame != f0 or len(drive) < n:
            drive = self._compute(f0, n)
        image = self.prepared.image
        frames = np.empty((n,) + image.shape, np.uint8)
        for k in range(n):
            frames[k] = image
            self._renderer.render(frames[k], drive.values[k])
        self.next_frame = f0 + n
        self._drive = drive.window(f0 + n, drive.first_frame + len(drive)) if len(drive) > n else None
        self._trim()
        return FrameChunk(frames, f0)

    # -- internals -----------------------------------------------------------------------------
    def _compute(self, f0: int, n: int):
        """The drive of frames [f0, f0 + m), m >= n: as many as the known audio finalises (a block)."""
        stop = f0 + max(n, DRIVE_BLOCK)
        if not self._ended and self._speech_end > self._cursor():
            stop = max(f0 + n, min(stop, self._speech_end // self.spf - self._lookahead))
        w0 = max(f0 - self._context, self._base // self.spf)
        w1 = stop + self._lookahead
        t0 = float(w0 / self.fps)
        t1 = float(w1 / self.fps)
        phonemes = tuple(PhonemeTiming(p, max(0.0, a - t0), b - t0) for p, a, b in self._phonemes if b > t0 and a < t1)
        window = Audio(self._window(w0 * self.spf, w1 * self.spf), self.sample_rate, phonemes=phonemes)
        self._prune_track(t0)
        drive = self.animator.drive(self.prepared, window, fps=float(self.fps), emotion=self.track,
                                    first_frame=w0, n=w1 - w0)
        return drive.window(f0, stop)

    def _prune_track(self, t0: float) -> None:
        """Forget expression keys that no window can reach any more (the track stays small)."""
        keys = self.track.keys
        keep = 0
        for i in range(1, len(keys)):
            if keys[i].time + self.track.transition_s <= t0:
                keep = i
        if keep:
            first = keys[keep]
            self.track = ExpressionTrack((type(first)(0.0, first.expression),) + keys[keep + 1 :], self.track.transition_s)

    def _ensure(self, end: int) -> None:
        """Extend the audio buffer with silence up to global sample ``end``."""
        have = self._base + len(self._audio)
        if end > have:
            self._audio = np.concatenate([self._audio, np.zeros(end - have, np.float32)])

    def _window(self, a: int, b: int) -> np.ndarray:
        """Global samples [a, b): the buffer where known, silence elsewhere."""
        out = np.zeros(b - a, np.float32)
        lo, hi = max(a, self._base), min(b, self._base + len(self._audio), max(self._speech_end, self._cursor()))
        if hi > lo:
            out[lo - a : hi - a] = self._audio[lo - self._base : hi - self._base]
        return out

    def _trim(self) -> None:
        keep = max(self._base, (self.next_frame - self._context) * self.spf)
        if keep > self._base:
            self._audio = self._audio[keep - self._base :]
            self._base = keep
        limit = keep / self.sample_rate
        while self._phonemes and self._phonemes[0][2] < limit:
            self._phonemes.popleft()
