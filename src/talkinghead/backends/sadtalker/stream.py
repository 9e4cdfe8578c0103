"""Live streams of the SadTalker animator: coefficients block by block as the audio arrives.

Each speech segment's coefficients are exactly those of the whole clip (:func:`.coeffnets.generate_coefficients`
with Savitzky-Golay smoothing), computed as soon as the audio each step needs is there:

* mel frame *m* is final once the audio reaches sample ``200 m + 400`` (centred 800-sample STFT);
* frame *i*'s expression (ExpNet) once its 16 mel frames (from two frames back) are final;
* the head motion of frames ``1 + 32k .. 32k + 32`` (PoseVAE) once those 32 windows are; a last,
  partial block waits for the end of the segment, because upstream encodes the clip's last 32 windows;
* smoothing of frame *i* once raw poses up to *i* + 6 exist (window 13);
* rendering of frame *i* once coefficient rows up to *i* + 13 are final (MappingNet's 27-frame window).

Around and between segments the face idles: the source expression with blinks, the source pose plus
a small periodic sway that also runs under speech (so a switch never jumps), and the end of each
segment eases its head motion in from and back to the source pose. Idle frames repeat with the sway's period and
are kept (within a memory budget), so idling costs nothing after the first period.
"""

from __future__ import annotations

import logging
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from ...stages.animator import check_render
from ...streaming.resample import StreamResampler
from ...values import Audio, FrameChunk
from .audio import MEL_STEP, mel_spectrogram
from .coeffnets import SEQ_LEN, savgol_pose
from .mapping import SEMANTIC_RADIUS, camera_sequence, render_inputs

if TYPE_CHECKING:
    from .backend import SadTalkerAnimator, SadTalkerPrepared

log = logging.getLogger(__name__)

__all__ = ["CoefficientStream", "SadTalkerStream"]

_HOP, _HALF_WIN = 200, 400  # mel hop and half STFT window (samples at 16 kHz)
_SMOOTH = 6  # half window of the pose smoothing
_BLINK = np.array([0.5, 0.9, 1.0, 0.9, 0.5])  # upstream's blink profile at 25 fps


class CoefficientStream:
    """The (T, 70) coefficients of one clip, computed as its 16 kHz audio arrives.

    Args:
        exp_net, pose_vae: the loaded coefficient networks.
        ref_coeff: the source's coefficients (at least 70: exp 64 || pose 6).
        fps: video frame rate.
        pose_style: PoseVAE style.
        generator: torch generator the pose latents are drawn from (in order, one per block).
        blink: blink ratio for clip-local frame indices (an array in, an array out).
    """

    def __init__(self, exp_net: Any, pose_vae: Any, ref_coeff: np.ndarray, *, fps: float, pose_style: int,
                 generator: Any, blink: Callable[[np.ndarray], np.ndarray]) -> None:
        self.exp_net, self.pose_vae = exp_net, pose_vae
        self.ref = np.asarray(ref_coeff, np.float32).reshape(-1)[:70]
        self.fps, self.spf16 = float(fps), 16000 / float(fps)
        self.pose_style, self.generator, self.blink = pose_style, generator, blink
        self._pieces: list[np.ndarray] = []
        self._n = 0
        self.total: int | None = None
        self._windows = np.zeros((0, 80, MEL_STEP), np.float32)
        self._exp = np.zeros((0, 64), np.float32)
        self._motion = np.zeros((1, 6), np.float32)  # frame 0: the reference pose
        self._blocks = 0
        self._final = np.zeros((0, 70), np.float32)
        self._stale = True  # new audio (or the end) since the last advance

    def push(self, samples: np.ndarray) -> None:
        """Add 16 kHz samples of the clip."""
        if self.total is not None:
            raise ValueError("the clip has ended")
        x = np.asarray(samples, np.float32).reshape(-1)
        if x.size:
            self._pieces.append(x)
            self._n += x.size
            self._stale = True

    def end(self, frames: int) -> None:
        """The clip is ``frames`` frames long; its audio is cut or padded to that (as upstream)."""
        self.total = int(frames)
        self._stale = True

    def rows(self) -> np.ndarray:
        """Every coefficient row that is final now (in order; more appear as audio arrives)."""
        if self._stale:
            self._advance()
            self._stale = False
        return self._final

    # -- internals -----------------------------------------------------------------------------
    def _wav(self) -> np.ndarray:
        wav = np.concatenate(self._pieces) if len(self._pieces) > 1 else (self._pieces[0] if self._pieces else np.zeros(0, np.float32))
        self._pieces = [wav] if wav.size else []
        if self.total is None:
            return wav
        need = int(self.total * self.spf16)
        return wav[:need] if len(wav) >= need else np.pad(wav, (0, need - len(wav)))

    def _advance(self) -> None:
        wav = self._wav()
        if self.total is None:
            exact = (len(wav) - _HALF_WIN) // _HOP + 1  # mel frames whose STFT window is inside the audio
            if exact < MEL_STEP:
                return
            last = None
        else:
            exact = 1 + len(wav) // _HOP
            last = exact - 1
        done = len(self._exp)
        if self.total is not None:
            upto = self.total
        else:  # frames whose 16-frame window ends inside the exact mel frames
            upto = done
            while int(80 * ((upto - 2) / self.fps)) + MEL_STEP - 1 <= exact - 1:
                upto += 1
        if upto > done:
            spec = mel_spectrogram(wav).T  # (n_mel, 80)
            top = spec.shape[0] - 1 if last is None else last
            steps = np.arange(MEL_STEP)
            win = np.empty((upto - done, 80, MEL_STEP), np.float32)
            for k, i in enumerate(range(done, upto)):
                start = int(80 * ((i - 2) / self.fps))
                win[k] = spec[np.clip(start + steps, 0, top), :].T
            self._windows = np.concatenate([self._windows, win])
            ratio = np.asarray(self.blink(np.arange(done, upto)), np.float32).reshape(-1)
            ref_exp = np.repeat(self.ref[None, :64], upto - done, 0)
            self._exp = np.concatenate([self._exp, self.exp_net.predict(win, ref_exp, ratio)])
        self._pose_blocks()
        self._smooth()

    def _z(self) -> np.ndarray:
        import torch

        return torch.randn(1, 64, generator=self.generator).numpy()[0]

    def _pose_blocks(self) -> None:
        have = len(self._windows)
        while 1 + (self._blocks + 1) * SEQ_LEN <= have and (self.total is None or (self.total - 1) // SEQ_LEN > self._blocks):
            a = 1 + self._blocks * SEQ_LEN
            block = self.pose_vae.motion_block(self._windows[a : a + SEQ_LEN], self.ref[64:70], self.pose_style, self._z())
            self._motion = np.concatenate([self._motion, block])
            self._blocks += 1
        if self.total is not None and len(self._motion) < self.total and have >= self.total:
            rem = self.total - len(self._motion)
            block = self.pose_vae.motion_block(self._windows[1 : self.total][-SEQ_LEN:], self.ref[64:70], self.pose_style, self._z())
            self._motion = np.concatenate([self._motion, block[-rem:]])

    def _smooth(self) -> None:
        raw = self.ref[64:70][None] + self._motion
        n = min(len(raw), len(self._exp))
        done = len(self._final)
        if self.total is not None and n >= self.total:
            pose = savgol_pose(raw[: self.total])
            stop = self.total
        elif n >= 2 * _SMOOTH + 1:
            stop = n - _SMOOTH
            pose = np.zeros((stop, 6), np.float32)
            if done < _SMOOTH:
                pose[:_SMOOTH] = savgol_pose(raw[: 2 * _SMOOTH + 1])[:_SMOOTH]
            for i in range(max(done, _SMOOTH), stop):
                pose[i] = savgol_pose(raw[i - _SMOOTH : i + _SMOOTH + 1])[_SMOOTH]
        else:
            return
        if stop > done:
            rows = np.concatenate([self._exp[done:stop], pose[done:stop]], 1).astype(np.float32)
            self._final = np.concatenate([self._final, rows])


def blink_ratio(frames: np.ndarray, fps: float, seed: int, period: int) -> np.ndarray:
    """Blink ratio per global frame: one upstream-shaped blink in each quarter of ``period`` frames, at a
    seeded place, repeating every ``period`` frames."""
    frames = np.asarray(frames, np.int64)
    slot = max(8, period // 4)
    profile = np.interp(np.linspace(0, 4, max(3, int(round(5 * fps / 25)))), np.arange(5), _BLINK)
    offsets = [int(np.random.default_rng((seed, 7, k)).integers(2, max(3, slot - len(profile) - 2))) for k in range(4)]
    local = frames % period
    k = np.minimum(local // slot, 3)
    pos = local - k * slot - np.asarray(offsets)[k]
    out = np.zeros(len(frames))
    inside = (pos >= 0) & (pos < len(profile))
    out[inside] = profile[pos[inside]]
    return out


def sway(frames: np.ndarray, period: int, amount: float) -> np.ndarray:
    """(n, 6) pose offsets: pitch/yaw/roll (radians) sinusoids of period ``period`` frames; no translation."""
    t = 2 * np.pi * np.asarray(frames, np.float64)[:, None] / period
    out = np.zeros((len(frames), 6))
    out[:, 0] = 0.006 * np.sin(t[:, 0] * 2 + 0.7)
    out[:, 1] = 0.012 * np.sin(t[:, 0] + 1.9) + 0.004 * np.sin(3 * t[:, 0] + 0.3)
    out[:, 2] = 0.005 * np.sin(t[:, 0] + 4.1)
    return (amount * out).astype(np.float32)


@dataclass(eq=False)
class _Segment:
    start: int
    coeffs: CoefficientStream
    resampler: StreamResampler
    samples: int = 0
    frames: int | None = None  # known once ended
    rendered: int = 0

    @property
    def ended(self) -> bool:
        return self.frames is not None

    def length(self, spf: int) -> int:
        return self.frames if self.frames is not None else self.samples // spf


@dataclass(eq=False)
class _IdleCache:
    limit: int
    frames: OrderedDict = field(default_factory=OrderedDict)


class SadTalkerStream:
    """The per-stream state of :class:`~.backend.SadTalkerAnimator` (see :class:`~talkinghead.stages.AnimatorStream`).

    Args:
        idle_sway: scale of the idle head sway (0 keeps the head still between sentences).
        ease_frames: frames over which a segment's head motion returns to the source pose at its end.
        idle_period: seconds after which idle motion repeats (its frames are kept and reused).
        idle_cache_mb: memory for kept idle frames.
    """

    def __init__(self, animator: SadTalkerAnimator, prepared: SadTalkerPrepared, *, fps: Fraction, sample_rate: int,
                 first_frame: int = 0, idle_sway: float = 1.0, ease_frames: int = 6, idle_period: float = 8.0,
                 idle_cache_mb: float = 256.0) -> None:
        import torch

        animator.load()
        self.animator, self.prepared = animator, prepared
        self.fps, self.sample_rate = Fraction(fps), int(sample_rate)
        spf = self.sample_rate / self.fps
        if spf.denominator != 1:
            raise ValueError(f"{sample_rate} Hz at {fps} fps is not a whole number of samples per frame")
        self.spf = int(spf)
        self.next_frame = int(first_frame)
        self.seed = animator.seed if animator.seed is not None else 0
        self.period = max(8, int(round(idle_period * float(self.fps))))
        self.idle_sway, self.ease = float(idle_sway), max(1, int(ease_frames))
        self._gen = torch.Generator().manual_seed(self.seed)
        self._segments: deque[_Segment] = deque()
        self._ref = np.asarray(prepared.source_coeff, np.float32)[:70]
        self._idle_exp: dict[float, np.ndarray] = {}
        self._idle = _IdleCache(limit=-1)
        self._idle_budget = int(idle_cache_mb * 2**20)

    # -- speech in ---------------------------------------------------------------------------
    def _blink(self, start: int) -> Callable[[np.ndarray], np.ndarray]:
        return lambda local: blink_ratio(start + np.asarray(local), float(self.fps), self.seed, self.period) \
            if self.animator.blink else np.zeros(len(local))

    def push(self, audio: Audio) -> None:
        if audio.sample_rate != self.sample_rate:
            audio = audio.resample(self.sample_rate)
        seg = self._segments[-1] if self._segments and not self._segments[-1].ended else None
        if seg is None:
            start = self.next_frame
            if self._segments:
                last = self._segments[-1]
                start = max(start, last.start + last.length(self.spf))
            nets = self.animator._nets
            coeffs = CoefficientStream(nets["exp"], nets["pose"], self._ref, fps=float(self.fps),
                                       pose_style=self.animator.pose_style, generator=self._gen, blink=self._blink(start))
            seg = _Segment(start, coeffs, StreamResampler(self.sample_rate, 16000))
            self._segments.append(seg)
        seg.coeffs.push(seg.resampler.push(audio.samples))
        seg.samples += len(audio.samples)

    def end_speech(self) -> None:
        if self._segments and not self._segments[-1].ended:
            seg = self._segments[-1]
            seg.coeffs.push(seg.resampler.flush())
            seg.frames = -(-seg.samples // self.spf)
            seg.coeffs.end(seg.frames)
            if seg.frames == 0:
                self._segments.pop()

    def pending(self) -> int:
        return sum(s.length(self.spf) - s.rendered for s in self._segments)

    def ready(self) -> int:
        if not self._segments:
            return 0
        seg = self._segments[0]
        final = len(seg.coeffs.rows())
        if seg.ended and final >= seg.frames:
            return seg.frames - seg.rendered
        return max(0, final - SEMANTIC_RADIUS - seg.rendered)

    def clear(self) -> None:
        self._segments.clear()

    def close(self) -> None:
        self.clear()
        self._idle.frames.clear()

    # -- frames out ----------------------------------------------------------------------------
    def render(self, n: int) -> FrameChunk:
        n = check_render(n, self.pending(), not self._segments or self._segments[-1].ended)
        out: list[np.ndarray] = []
        while len(out) < n:
            g = self.next_frame + len(out)
            seg = self._segments[0] if self._segments else None
            if seg is not None and g >= seg.start:
                k = min(n - len(out), seg.length(self.spf) - seg.rendered)
                out.extend(self._speech(seg, k))
                seg.rendered += k
                if seg.ended and seg.rendered >= seg.frames:
                    self._segments.popleft()
            else:
                stop = n if seg is None else min(n, seg.start - self.next_frame)
                out.extend(self._idle_frames(g, stop - len(out)))
        chunk = FrameChunk(np.stack(out), self.next_frame)
        self.next_frame += n
        return chunk

    def _idle_row(self, frames: np.ndarray) -> np.ndarray:
        rows = np.zeros((len(frames), 70), np.float32)
        ratio = blink_ratio(frames, float(self.fps), self.seed, self.period) if self.animator.blink else np.zeros(len(frames))
        for k, r in enumerate(np.round(ratio, 3)):
            rows[k, :64] = self._exp_at(float(r))
        rows[:, 64:70] = self._ref[64:70] + sway(frames, self.period, self.idle_sway)
        return rows

    def _exp_at(self, ratio: float) -> np.ndarray:
        if ratio not in self._idle_exp:
            silent = mel_spectrogram(np.zeros(16000, np.float32)).T[:MEL_STEP].T[None].astype(np.float32)
            self._idle_exp[ratio] = self.animator._nets["exp"].predict(silent, self._ref[None, :64], np.array([ratio], np.float32))[0]
        return self._idle_exp[ratio]

    def _rows(self, seg: _Segment | None, frames: np.ndarray) -> np.ndarray:
        """Coefficient rows of global ``frames``: the segment's where it speaks, idle rows elsewhere."""
        rows = self._idle_row(frames)
        if seg is None:
            return rows
        final = seg.coeffs.rows()
        local = frames - seg.start
        inside = (local >= 0) & (local < seg.length(self.spf))
        if not final.size:
            return rows
        take = np.clip(local[inside], 0, len(final) - 1)  # forced before its rows are final: the last known
        speech = final[take].copy()
        motion = speech[:, 64:70] - self._ref[64:70]
        # ease in from and back to the source pose, where idle frames are
        weight = np.clip(local[inside] / self.ease, 0.0, 1.0)
        if seg.ended:
            weight = np.minimum(weight, np.clip((seg.frames - 1 - local[inside]) / self.ease, 0.0, 1.0))
        motion *= weight[:, None].astype(np.float32)
        speech[:, 64:70] = self._ref[64:70] + motion + sway(frames[inside], self.period, self.idle_sway)
        rows[inside] = speech
        return rows

    def _render_rows(self, rows: np.ndarray, n: int) -> list[np.ndarray]:
        """Render the middle ``n`` frames of ``rows`` (which carry ±SEMANTIC_RADIUS rows of context)."""
        an = self.animator
        ri = render_inputs(self.prepared.source_coeff, rows, full=an.full_mode, expression_scale=an.expression_scale,
                           still=an.still)
        target = ri.target[SEMANTIC_RADIUS : SEMANTIC_RADIUS + n]
        free = {f"{k}_deg": camera_sequence(v, n).astype(np.float32) for k, v in (("yaw", an.yaw), ("pitch", an.pitch), ("roll", an.roll))
                if v is not None}  # one fixed free-view angle each (lists are refused by open_stream)
        return [f for chunk in an.render_windows(self.prepared, ri.source, target, free) for f in chunk.frames]

    def _speech(self, seg: _Segment, k: int) -> list[np.ndarray]:
        g0 = seg.start + seg.rendered
        frames = np.arange(g0 - SEMANTIC_RADIUS, g0 + k + SEMANTIC_RADIUS)
        return self._render_rows(self._rows(seg, frames), k)

    def _idle_frames(self, g: int, k: int) -> list[np.ndarray]:
        cache = self._idle.frames
        out: list[np.ndarray | None] = [cache.get((g + i) % self.period) for i in range(k)]
        missing = [i for i, f in enumerate(out) if f is None]
        if missing:
            a, b = g + missing[0], g + missing[-1] + 1
            frames = np.arange(a - SEMANTIC_RADIUS, b + SEMANTIC_RADIUS)
            rendered = self._render_rows(self._idle_row(frames), b - a)
            if self._idle.limit < 0:  # frames kept within the memory budget
                self._idle.limit = self._idle_budget // max(1, rendered[0].nbytes)
            for j, f in enumerate(rendered):
                i = a - g + j
                if out[i] is None:
                    out[i] = f
                if self._idle.limit > 0:
                    cache[(a + j) % self.period] = f
                    while len(cache) > self._idle.limit:
                        cache.popitem(last=False)
        return out  # type: ignore[return-value]
