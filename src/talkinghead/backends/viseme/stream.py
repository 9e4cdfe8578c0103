"""Live streams of the viseme animator: the drive computed over a sliding window of the audio.

Frame *i* depends only on the audio within :data:`~.timeline.WINDOW_CONTEXT` before it and
:data:`~.timeline.WINDOW_LOOKAHEAD` after it, and its blinks and head motion on the global frame
index, so a stream rendered a few frames at a time equals the same speech rendered as one clip
(given the same loudness reference), and idle frames continue the motion without a jump.
"""

from __future__ import annotations

from collections import deque
from fractions import Fraction
from typing import TYPE_CHECKING

import numpy as np

from ...values import Audio, FrameChunk, PhonemeTiming
from .timeline import WINDOW_CONTEXT, WINDOW_LOOKAHEAD, compute_drive

if TYPE_CHECKING:
    from .animator import PreparedPortrait, VisemeAnimator

__all__ = ["VisemeStream"]

#: Loudness reference before any speech was heard (RMS of typical normalised TTS speech).
DEFAULT_LEVEL_REF = 0.12
#: Seconds of recent speech whose loudness sets the reference.
LEVEL_MEMORY_S = 30.0


class VisemeStream:
    """The per-stream state of :class:`~.animator.VisemeAnimator` (see :class:`~talkinghead.stages.AnimatorStream`)."""

    def __init__(
        self, animator: VisemeAnimator, prepared: PreparedPortrait, *, fps: Fraction, sample_rate: int, first_frame: int
    ) -> None:
        from .render import FrameRenderer

        self.animator = animator
        self.fps = Fraction(fps)
        self.sample_rate = int(sample_rate)
        spf = self.sample_rate / self.fps
        if spf.denominator != 1:
            raise ValueError(f"{sample_rate} Hz at {fps} fps is not a whole number of samples per frame")
        self.spf = int(spf)
        self.next_frame = int(first_frame)
        self._image = prepared.image
        self._jaw_scale = prepared.fields.jaw_scale
        self._renderer = FrameRenderer(prepared.image, prepared.fields)
        self._context = int(np.ceil(WINDOW_CONTEXT * float(self.fps)))
        self._lookahead = int(np.ceil(WINDOW_LOOKAHEAD * float(self.fps)))
        # audio of the stream from global sample _base on: rendered context, then pending speech
        self._base = self.next_frame * self.spf
        self._audio = np.zeros(0, np.float32)
        self._speech_end = self._base  # global sample index where pushed speech ends
        self._ended = True
        self._phonemes: deque[tuple[str, float, float]] = deque()  # global seconds
        self._env: deque[float] = deque(maxlen=int(LEVEL_MEMORY_S * float(self.fps)))
        self._env_pending = np.zeros(0, np.float32)  # samples of the current speech not yet measured
        self._level_ref = DEFAULT_LEVEL_REF

    # -- speech in ---------------------------------------------------------------------------
    def _cursor(self) -> int:
        return self.next_frame * self.spf

    def push(self, audio: Audio) -> None:
        if audio.sample_rate != self.sample_rate:
            audio = audio.resample(self.sample_rate)
        start = max(self._speech_end, self._cursor())
        if self._speech_end < self._cursor():  # speech starts anew at the next frame
            self._env_pending = np.zeros(0, np.float32)
        self._ensure(start)
        self._audio = np.concatenate([self._audio[: start - self._base], audio.samples])
        offset = start / self.sample_rate
        for p in audio.phonemes:
            self._phonemes.append((p.phoneme, p.start + offset, p.end + offset))
        self._speech_end = start + len(audio.samples)
        self._ended = False
        self._measure(audio.samples)

    def end_speech(self) -> None:
        if self._speech_end > self._cursor():
            self._speech_end = -(-self._speech_end // self.spf) * self.spf
            self._ensure(self._speech_end)
        self._ended = True

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

    def close(self) -> None:
        self._audio = np.zeros(0, np.float32)
        self._phonemes.clear()

    # -- frames out ----------------------------------------------------------------------------
    def render(self, n: int) -> FrameChunk:
        n = int(n)
        if n < 1:
            raise ValueError(f"render needs n >= 1, got {n}")
        if not self._ended and n > self.pending():
            raise ValueError(f"only {self.pending()} frames of speech are pending; push more or end the speech")
        f0 = self.next_frame
        w0 = max(f0 - self._context, self._base // self.spf)
        w1 = f0 + n + self._lookahead
        window = self._window(w0 * self.spf, w1 * self.spf)
        t0 = w0 / self.fps
        phonemes = tuple(
            PhonemeTiming(p, max(0.0, a - float(t0)), b - float(t0))
            for p, a, b in self._phonemes
            if b > float(t0) and a < float(w1 / self.fps)
        )
        an = self.animator
        drive = compute_drive(
            Audio(window, self.sample_rate, phonemes=phonemes),
            float(self.fps),
            w1 - w0,
            seed=an.seed,
            mouth_scale=an.mouth_scale / self._jaw_scale,
            blink_rate=an.blink_rate,
            head_motion=an.head_motion,
            use_phonemes=an.use_phonemes,
            first_frame=w0,
            level_ref=self._level_ref,
        )
        frames = np.empty((n,) + self._image.shape, np.uint8)
        for k in range(n):
            i = f0 - w0 + k
            frames[k] = self._image
            w = self._renderer.weights(drive.jaw[i], drive.spread[i], drive.pucker[i], drive.blink[i], drive.head[i])
            self._renderer.render(frames[k], w, float(drive.jaw[i]))
        self.next_frame = f0 + n
        self._trim()
        return FrameChunk(frames, f0)

    # -- internals -----------------------------------------------------------------------------
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
        limit = (keep / self.sample_rate) - 1.0
        while self._phonemes and self._phonemes[0][2] < limit:
            self._phonemes.popleft()

    def _measure(self, samples: np.ndarray) -> None:
        """Update the loudness reference from the speech's per-frame RMS (recent speech only)."""
        x = np.concatenate([self._env_pending, samples])
        whole = len(x) // self.spf
        if whole:
            frames = x[: whole * self.spf].astype(np.float64).reshape(whole, self.spf)
            self._env.extend(np.sqrt((frames**2).mean(axis=1)).tolist())
        self._env_pending = x[whole * self.spf :]
        env = np.asarray(self._env)
        if env.size and env.max() > 1e-5:
            loud = env[env > 0.1 * env.max()]
            ref = float(np.percentile(loud, 90))
            # few frames heard yet: do not let the first syllable set the scale alone
            weight = min(1.0, env.size / (0.5 * float(self.fps)))
            self._level_ref = weight * ref + (1 - weight) * max(ref, self._level_ref)
