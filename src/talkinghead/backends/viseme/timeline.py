"""Per-frame drive of the face: jaw, lip spread and pucker, blinks and head motion.

Mouth shapes come from phoneme timings when the TTS gives them (IPA symbols from piper/espeak)
and from the sound itself otherwise; in both cases the jaw opening follows the speech loudness
(the RMS envelope), so the mouth is closed in silence and opens wider on louder syllables.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...values import Audio, PhonemeTiming

__all__ = ["Drive", "viseme_of", "compute_drive", "VISEMES"]

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


def speech_level(audio: Audio, fps: float, n: int) -> np.ndarray:
    """Loudness per frame in [0, 1]: the RMS envelope scaled to its loud frames, with a noise gate."""
    env = audio.rms_envelope(fps, n).astype(np.float64)
    peak = float(env.max()) if env.size else 0.0
    if peak <= 1e-5:
        return np.zeros(n)
    ref = float(np.percentile(env[env > 0.1 * peak], 90))
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


def blink_curve(n: int, fps: float, rng: np.random.Generator, per_minute: float) -> np.ndarray:
    """Eyelid closure per frame: blinks at random (seeded) intervals, ~0.2 s each."""
    out = np.zeros(n)
    if per_minute <= 0:
        return out
    duration = n / fps
    t = rng.uniform(0.4, 1.8)
    centres = (np.arange(n) + 0.5) / fps
    while t < duration:
        d = centres - t
        shape = np.where(d < 0, 0.0, np.where(d < 0.07, d / 0.07, np.where(d < 0.1, 1.0, 1.0 - (d - 0.1) / 0.12)))
        out = np.maximum(out, np.clip(shape, 0.0, 1.0))
        t += max(1.2, rng.exponential(60.0 / per_minute))
    return out


def head_curve(n: int, fps: float, rng: np.random.Generator, level: np.ndarray, amount: float) -> np.ndarray:
    """Slow, small head sway (sum of seeded sinusoids) plus a slight nod with speech energy."""
    t = (np.arange(n) + 0.5) / fps
    out = np.zeros((n, 3))
    amps = (0.010, 0.007, 0.9)  # face widths, face widths, degrees
    for c in range(3):
        for _ in range(3):
            f = rng.uniform(0.08, 0.45)
            out[:, c] += amps[c] / 2 * rng.uniform(0.5, 1.0) * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
    out[:, 1] += 0.006 * _gauss(level, 0.15 * fps)
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
) -> Drive:
    """The per-frame weights of a clip.

    Args:
        audio: the speech (its ``phonemes`` are used when present and ``use_phonemes``).
        fps, n: frame rate and number of frames.
        seed: seeds blinks and head motion (same seed, same video).
        mouth_scale: scales the jaw opening.
        blink_rate: blinks per minute (0 disables).
        head_motion: scales the head sway (0 disables).
    """
    rng = np.random.default_rng(seed)
    level = _gauss(speech_level(audio, fps, n), 0.02 * fps)
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
    blink = blink_curve(n, fps, rng, blink_rate)
    head = head_curve(n, fps, rng, level, head_motion)
    return Drive(jaw, spread, pucker, blink, head)
