"""Per-frame drive of the face: jaw, lip spread and pucker, blinks and head motion.

Mouth shapes come from phoneme timings when the TTS gives them (IPA symbols from piper/espeak)
and from the sound itself otherwise; in both cases the jaw opening follows the speech loudness
(the RMS envelope), so the mouth is closed in silence and opens wider on louder syllables.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ...values import Audio, PhonemeTiming

__all__ = ["Drive", "viseme_of", "compute_drive", "loudness_reference", "VISEMES", "WINDOW_CONTEXT", "WINDOW_LOOKAHEAD"]

#: Seconds of audio before a window that :func:`compute_drive` needs for its first frames to equal
#: the whole clip's (the causal head nod settles within it).
WINDOW_CONTEXT = 0.64
#: Seconds of audio after a window that its last frames depend on (co-articulation and loudness smoothing).
WINDOW_LOOKAHEAD = 0.16

# phoneme -> (openness, spread, pucker), each in [0, 1]
VISEMES: dict[str, tuple[float, float, float]] = {}


def _add(symbols: str, shape: tuple[float, float, float]) -> None:
    for s in symbols.split():
        VISEMES[s] = shape


_add("a ɑ æ ɐ ɒ ʌ ä", (1.0, 0.2, 0.0))
_add("ɔ", (0.85, 0.0, 0.5))
_add("o ɵ", (0.7, 0.0, 0.7))
_add("ʊ", (0.5, 0.0, 0.6))
_add("u ʉ ɯ", (0.4, 0.0, 0.9))
_add("e ɛ œ ø", (0.7, 0.5, 0.0))
_add("ə ɜ ɚ ɝ ɘ", (0.6, 0.1, 0.0))
_add("i ɪ y ʏ ɨ", (0.45, 0.8, 0.0))
_add("p b m ɱ", (0.0, 0.0, 0.0))
_add("f v", (0.12, 0.2, 0.0))
_add("θ ð", (0.3, 0.2, 0.0))
_add("t d n l s z ɾ ɫ ɬ", (0.3, 0.3, 0.0))
_add("ʃ ʒ ɕ ʑ", (0.3, 0.0, 0.6))
_add("k g ɡ ŋ x ɣ q", (0.45, 0.1, 0.0))
_add("h ɦ ʔ", (0.55, 0.0, 0.0))
_add("ɹ r ʁ ɻ", (0.35, 0.0, 0.4))
_add("w ʍ", (0.2, 0.0, 1.0))
_add("j ç", (0.35, 0.6, 0.0))

#: Markers without a mouth shape of their own (they inherit their neighbours').
MODIFIERS = set("ˈˌːˑ̩̯̃ʰʲʷ")
#: Sentence/phrase markers and punctuation: the mouth rests.
PAUSES = set("^$_ ,.;:!?-—…\"'()")

SILENT = (0.0, 0.0, 0.0)
UNKNOWN = (0.5, 0.1, 0.0)


def viseme_of(phoneme: str) -> tuple[float, float, float] | None:
    """Mouth shape (openness, spread, pucker) of an IPA symbol; None for stress/length marks."""
    if not phoneme or all(ch in MODIFIERS for ch in phoneme):
        return None
    if all(ch in PAUSES for ch in phoneme):
        return SILENT
    for ch in phoneme:  # multi-symbol phonemes (diphthongs, affricates): first known symbol
        if ch in VISEMES:
            return VISEMES[ch]
    return UNKNOWN


@dataclass
class Drive:
    """Weights per frame (arrays of length n): jaw, spread, pucker, blink in [0, 1]; head (n, 3)."""

    jaw: np.ndarray
    spread: np.ndarray
    pucker: np.ndarray
    blink: np.ndarray
    head: np.ndarray  # (n, 3): x and y translation in face widths, roll in degrees

    def __len__(self) -> int:
        return len(self.jaw)


def _gauss(x: np.ndarray, sigma: float) -> np.ndarray:
    if sigma <= 0.05 or len(x) < 2:
        return x
    r = int(np.ceil(3 * sigma))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k /= k.sum()
    return np.convolve(np.pad(x, r, mode="edge"), k, mode="valid")


def loudness_reference(audio: Audio, fps: float, n: int | None = None) -> float | None:
    """The RMS level that counts as "fully loud" for ``audio``: the 90th percentile of its loud frames.

    None for silence. A stream passes a running value of this to :func:`compute_drive` so that
    loudness does not depend on the window it is computing.
    """
    n = n if n is not None else max(1, int(round(audio.duration * fps)))
    env = audio.rms_envelope(fps, n).astype(np.float64)
    peak = float(env.max()) if env.size else 0.0
    if peak <= 1e-5:
        return None
    return float(np.percentile(env[env > 0.1 * peak], 90))


def speech_level(audio: Audio, fps: float, n: int, *, ref: float | None = None) -> np.ndarray:
    """Loudness per frame in [0, 1]: the RMS envelope scaled to ``ref`` (default: the clip's loud frames), gated."""
    env = audio.rms_envelope(fps, n).astype(np.float64)
    if ref is None:
        ref = loudness_reference(audio, fps, n)
        if ref is None:
            return np.zeros(n)
    level = np.clip(env / max(ref, 1e-6), 0.0, 1.2)
    return np.clip((level - 0.06) / 0.94, 0.0, None)


def _phoneme_shapes(phonemes: tuple[PhonemeTiming, ...], times: np.ndarray) -> np.ndarray:
    """(len(times), 3) mouth shapes sampled at ``times`` (co-articulated by the caller)."""
    spans, last = [], SILENT
    for p in phonemes:
        shape = viseme_of(p.phoneme)
        if shape is None:  # stress / length marks keep the previous shape
            shape = last
        spans.append((p.start, p.end, shape))
        last = shape
    out = np.zeros((len(times), 3))
    if not spans:
        return out
    starts = np.array([s[0] for s in spans])
    shapes = np.array([s[2] for s in spans])
    idx = np.clip(np.searchsorted(starts, times, side="right") - 1, 0, len(spans) - 1)
    inside = times < np.array([s[1] for s in spans])[idx] + 1e-3
    out[inside] = shapes[idx[inside]]
    return out


def _spectral_shapes(audio: Audio, fps: float, n: int) -> np.ndarray:
    """Mouth shapes guessed from the sound (no phonemes): bright sounds spread, dark ones round."""
    sr, x = audio.sample_rate, audio.samples
    hop = sr / fps
    win = int(max(256, 2 ** np.ceil(np.log2(hop))))
    freqs = np.fft.rfftfreq(win, 1 / sr)
    out = np.zeros((n, 3))
    out[:, 0] = 0.8
    window = np.hanning(win)
    for i in range(n):
        a = int(i * hop + hop / 2 - win / 2)
        seg = x[max(0, a) : max(0, a) + win]
        if seg.size < win:
            seg = np.pad(seg, (0, win - seg.size))
        spec = np.abs(np.fft.rfft(seg * window))
        total = spec.sum()
        if total <= 1e-6:
            continue
        centroid = float((spec * freqs).sum() / total)
        out[i, 1] = np.clip((centroid - 1800) / 2500, 0, 1) * 0.6
        out[i, 2] = np.clip((1000 - centroid) / 700, 0, 1) * 0.5
        out[i, 0] = 0.8 - 0.3 * out[i, 1]
    return out


def _frame_times(n: int, fps: float, first_frame: int) -> np.ndarray:
    """Centre time (s) of frames ``first_frame .. first_frame + n - 1`` of the stream."""
    return (first_frame + np.arange(n) + 0.5) / fps


@lru_cache(maxsize=4096)
def _slot_offset(seed: int, slot: int) -> float:
    """Where in its interval the blink of ``slot`` falls (a pure function of seed and slot)."""
    return float(np.random.default_rng((seed, 0, slot)).uniform(0.15, 0.85))


def blink_curve(n: int, fps: float, seed: int, per_minute: float, *, first_frame: int = 0) -> np.ndarray:
    """Eyelid closure per frame: one blink (~0.2 s) at a seeded place in each interval of ``60/per_minute`` s.

    A function of the seed and the global frame index only, so any window of a stream gets the same
    values as the whole.
    """
    out = np.zeros(n)
    if per_minute <= 0 or n == 0:
        return out
    period = 60.0 / per_minute
    centres = _frame_times(n, fps, first_frame)
    for slot in range(max(0, int(centres[0] // period) - 1), int(centres[-1] // period) + 1):
        t = (slot + _slot_offset(seed, slot)) * period
        d = centres - t
        shape = np.where(d < 0, 0.0, np.where(d < 0.07, d / 0.07, np.where(d < 0.1, 1.0, 1.0 - (d - 0.1) / 0.12)))
        out = np.maximum(out, np.clip(shape, 0.0, 1.0))
    return out


def _causal_smooth(x: np.ndarray, tau: float) -> np.ndarray:
    """One-pole low-pass (time constant ``tau`` frames): depends on the past only."""
    if tau <= 0.05 or len(x) == 0:
        return x
    a = 1.0 - np.exp(-1.0 / tau)
    out = np.empty(len(x))
    y = 0.0
    for i, v in enumerate(np.asarray(x, np.float64)):
        y += a * (v - y)
        out[i] = y
    return out


def head_curve(
    n: int, fps: float, seed: int, level: np.ndarray, amount: float, *, first_frame: int = 0
) -> np.ndarray:
    """Slow, small head sway (seeded sinusoids of the global time), breathing, and a slight nod after loud speech."""
    rng = np.random.default_rng((seed, 1))
    t = _frame_times(n, fps, first_frame)
    out = np.zeros((n, 3))
    amps = (0.010, 0.007, 0.9)  # face widths, face widths, degrees
    for c in range(3):
        for _ in range(3):
            f = rng.uniform(0.08, 0.45)
            out[:, c] += amps[c] / 2 * rng.uniform(0.5, 1.0) * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
    out[:, 1] += 0.003 * np.sin(2 * np.pi * t / 4.2)  # breathing, ~14 breaths a minute
    out[:, 1] += 0.006 * _causal_smooth(level, 0.15 * fps)
    return amount * out


def compute_drive(
    audio: Audio,
    fps: float,
    n: int,
    *,
    seed: int = 0,
    mouth_scale: float = 1.0,
    blink_rate: float = 15.0,
    head_motion: float = 1.0,
    use_phonemes: bool = True,
    first_frame: int = 0,
    level_ref: float | None = None,
) -> Drive:
    """The per-frame weights of a clip, or of a window of a longer stream.

    Every curve is a function of the seed, the global frame index and the audio near each frame,
    so the drive of frames [a, b) computed from a window of the audio (with a little context on both
    sides, see :data:`WINDOW_CONTEXT` and :data:`WINDOW_LOOKAHEAD`) equals the whole clip's.

    Args:
        audio: the speech covering the ``n`` frames (its ``phonemes`` are used when present and
            ``use_phonemes``; their times are relative to the start of ``audio``).
        fps, n: frame rate and number of frames.
        seed: seeds blinks and head motion (same seed, same video).
        mouth_scale: scales the jaw opening.
        blink_rate: blinks per minute (0 disables).
        head_motion: scales the head sway (0 disables).
        first_frame: global index of the first frame (where ``audio`` starts in the stream).
        level_ref: RMS level of fully loud speech (default: from ``audio`` itself, see
            :func:`loudness_reference`).
    """
    blink = blink_curve(n, fps, seed, blink_rate, first_frame=first_frame)
    if not np.any(audio.samples):  # silence: mouth closed, only blinks and head motion
        zero = np.zeros(n)
        return Drive(zero, zero.copy(), zero.copy(), blink, head_curve(n, fps, seed, zero, head_motion, first_frame=first_frame))
    level = _gauss(speech_level(audio, fps, n, ref=level_ref), 0.02 * fps)
    centres = (np.arange(n) + 0.5) / fps
    if use_phonemes and audio.phonemes:
        # Co-articulation: shapes on a fine time grid, smoothed (~45 ms), sampled per frame.
        rate = 200.0
        fine_t = np.arange(int(np.ceil(n / fps * rate)) + 1) / rate
        fine = _phoneme_shapes(audio.phonemes, fine_t)
        fine = np.stack([_gauss(fine[:, k], 0.045 * rate) for k in range(3)], axis=1)
        shapes = np.stack([np.interp(centres, fine_t, fine[:, k]) for k in range(3)], axis=1)
    else:
        shapes = _spectral_shapes(audio, fps, n)
        shapes = np.stack([_gauss(shapes[:, k], 0.04 * fps) for k in range(3)], axis=1)
    jaw = np.clip(level * (0.3 + 0.7 * shapes[:, 0]) * mouth_scale, 0.0, 1.0)
    voiced = np.clip(level * 3, 0, 1)
    spread = np.clip(shapes[:, 1] * voiced, 0, 1)
    pucker = np.clip(shapes[:, 2] * voiced, 0, 1)
    head = head_curve(n, fps, seed, level, head_motion, first_frame=first_frame)
    return Drive(jaw, spread, pucker, blink, head)
