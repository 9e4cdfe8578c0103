"""Per-frame drive of the face: mouth shapes, expression, eyes and head, one row of weights per frame.

Mouth shapes come from phoneme timings when the TTS gives them (IPA symbols from piper/espeak)
and from the sound itself otherwise; the jaw opening follows the speech loudness, so the mouth is
closed in silence and opens wider on louder syllables. Head motion follows the prosody (energy
and pitch accents); blinks and saccades come at seeded random times; the expression follows an
:class:`~talkinghead.expression.ExpressionTrack`.

**Windows of a stream.** Every curve is a deterministic function of the seed, the *global* frame
index and the audio within a short distance of the frame: :data:`DRIVE_CONTEXT_S` before and
:data:`DRIVE_LOOKAHEAD_S` after. A live stream computes the drive of frames [a, b) from the audio
of frames [a - context, b + look-ahead) with ``first_frame = a - context`` and keeps rows
``context .. context + b - a`` (see :func:`drive_window`): they equal the whole clip's drive.
Loudness is normalised against the loudest speech of the last 1.5 s (or a fixed ``level_ref``),
never against the whole clip; random events (blinks, saccades, asymmetry) are hashed from the
seed and their time slot, never drawn in sequence.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import NamedTuple

import numpy as np

from ...expression import ExpressionTrack
from ...values import Audio, PhonemeTiming, WordTiming

__all__ = [
    "CHANNELS",
    "DRIVE_CONTEXT_S",
    "DRIVE_LOOKAHEAD_S",
    "Drive",
    "Viseme",
    "VISEMES",
    "audio_window",
    "compute_drive",
    "drive_window",
    "viseme_of",
]

#: The drive's channels, in column order. Mouth: ``jaw`` (opening), ``spread`` (/i/), ``round``
#: (/u o w/), ``press`` (/m b p/: lips closed and pressed), ``lift`` (upper lip up: upper teeth
#: show), ``tuck`` (lower lip under the upper teeth: /f v/), ``tongue`` (tongue tip up: /t d n l θ/).
#: Expression: ``smile``, ``frown`` (mouth corners down), ``cheek`` (cheeks up, eyes narrow),
#: ``brow_up``, ``brow_inner`` (inner brows up: sad, worried), ``brow_down`` (frown of the brows),
#: ``eye_wide``, ``droop`` (upper lids lower). Eyes: ``blink``, ``gaze_x``, ``gaze_y`` (eye widths).
#: Head: ``head_x``, ``head_y`` (face widths), ``head_roll`` (degrees). Asymmetry: ``tilt`` (one
#: mouth corner up, the other down), ``shift`` (mouth sideways). ``talk``: speech activity over the
#: last and next ~0.2 s (a portrait smiling with its teeth relaxes its lips while it talks).
CHANNELS = (
    "jaw", "spread", "round", "press", "lift", "tuck", "tongue",
    "smile", "frown", "cheek", "brow_up", "brow_inner", "brow_down", "eye_wide", "droop",
    "blink", "gaze_x", "gaze_y", "head_x", "head_y", "head_roll", "tilt", "shift", "talk",
)  # fmt: skip
_C = {name: i for i, name in enumerate(CHANNELS)}

#: Audio needed before the first frame of a window for its drive to equal the whole clip's (seconds).
DRIVE_CONTEXT_S = 3.0
#: Audio needed after the last frame of a window (seconds): the look-ahead a live stream pays.
DRIVE_LOOKAHEAD_S = 0.6


class Viseme(NamedTuple):
    """The mouth shape of a phoneme, each in [0, 1]."""

    open: float = 0.0
    spread: float = 0.0
    round: float = 0.0
    press: float = 0.0
    lift: float = 0.0
    tuck: float = 0.0
    tongue: float = 0.0


VISEMES: dict[str, Viseme] = {}


def _add(symbols: str, **shape: float) -> None:
    for s in symbols.split():
        VISEMES[s] = Viseme(**shape)


_add("a ɑ ɐ ɒ ʌ ä", open=1.0, spread=0.15)
_add("æ", open=0.95, spread=0.35, lift=0.2)
_add("ɔ", open=0.8, round=0.55)
_add("o ɵ", open=0.6, round=0.8)
_add("ʊ", open=0.4, round=0.7)
_add("u ʉ ɯ", open=0.3, round=1.0)
_add("e ɛ", open=0.65, spread=0.55, lift=0.25)
_add("œ ø", open=0.55, round=0.6)
_add("ə ɜ ɚ ɝ ɘ", open=0.5, spread=0.1)
_add("i ɪ ɨ", open=0.3, spread=1.0, lift=0.35)
_add("y ʏ", open=0.3, round=0.9)
_add("p b m ɱ", press=1.0)
_add("f v", open=0.1, tuck=1.0, lift=0.5)
_add("θ ð", open=0.25, spread=0.2, tongue=1.0)
_add("t d n l ɾ ɫ ɬ", open=0.3, spread=0.3, tongue=0.7)
_add("s z", open=0.15, spread=0.5, lift=0.35)
_add("ʃ ʒ ɕ ʑ", open=0.25, round=0.65, lift=0.3)
_add("k g ɡ ŋ x ɣ q", open=0.45, spread=0.1)
_add("h ɦ ʔ", open=0.55)
_add("ɹ r ʁ ɻ", open=0.3, round=0.45)
_add("w ʍ", open=0.15, round=1.0)
_add("j ç", open=0.3, spread=0.6, lift=0.2)

#: Markers without a mouth shape of their own (they inherit their neighbours').
MODIFIERS = set("ˈˌːˑ̩̯̃ʰʲʷ")
#: Sentence/phrase markers and punctuation: the mouth rests.
PAUSES = set("^$_ ,.;:!?-—…\"'()")

SILENT = Viseme()
UNKNOWN = Viseme(open=0.5, spread=0.1)


def viseme_of(phoneme: str) -> Viseme | None:
    """Mouth shape of an IPA symbol; None for stress/length marks."""
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
    """Weights per frame: ``values[i, c]`` for frame ``first_frame + i`` and channel ``CHANNELS[c]``."""

    values: np.ndarray
    first_frame: int = 0

    def __getitem__(self, name: str) -> np.ndarray:
        return self.values[:, _C[name]]

    def __len__(self) -> int:
        return len(self.values)

    def window(self, start: int, stop: int) -> Drive:
        """Rows of the global frames [start, stop)."""
        a, b = start - self.first_frame, stop - self.first_frame
        if a < 0 or b > len(self):
            raise ValueError(
                f"frames [{start}, {stop}) are outside this drive's [{self.first_frame}, "
                f"{self.first_frame + len(self)})"
            )
        return Drive(self.values[a:b], start)


# -- small deterministic helpers ---------------------------------------------------------------
def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _gauss(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing over frames (kernel cut at 3σ; edges padded with the edge value)."""
    if sigma <= 0.05 or len(x) < 2:
        return np.asarray(x, np.float64)
    r = int(np.ceil(3 * sigma))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k /= k.sum()
    return np.convolve(np.pad(x, r, mode="edge"), k, mode="valid")


def _causal(x: np.ndarray, tau: float, fps: float) -> np.ndarray:
    """Smoothing over the last ``3 tau`` seconds only (a truncated exponential kernel)."""
    kt = np.arange(int(np.ceil(3 * tau * fps)) + 1) / fps
    k = np.exp(-kt / tau)
    k /= k.sum()
    return np.convolve(np.concatenate([np.zeros(len(k) - 1), x]), k, mode="valid")


def _hash01(seed: int, channel: int, k: np.ndarray) -> np.ndarray:
    """Uniform numbers in [0, 1) hashed from (seed, channel, k) — splitmix64; no sequential state."""
    with np.errstate(over="ignore"):
        x = np.asarray(k, np.int64).astype(np.uint64)
        x = x * np.uint64(0x9E3779B97F4A7C15) + np.uint64(
            (int(seed) * 0x632BE59BD9B4E019 + channel * 0x85EBCA6B) & 0xFFFFFFFFFFFFFFFF
        )
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return (x >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def _value_noise(seed: int, channel: int, t: np.ndarray, period: float) -> np.ndarray:
    """Smooth noise in [-1, 1] of time ``t``: hashed values every ``period`` s, eased between."""
    x = np.asarray(t) / period
    k = np.floor(x).astype(np.int64)
    f = _smoothstep(x - k)
    a, b = _hash01(seed, channel, k), _hash01(seed, channel, k + 1)
    return 2.0 * (a + (b - a) * f) - 1.0


# -- audio features (each frame from nearby audio only) -------------------------------------------
#: Loudness below this RMS is silence whatever the reference (about -50 dBFS).
SILENCE_RMS = 0.003
#: The loudness reference never falls below this (quiet speech still opens the mouth).
FLOOR_RMS = 0.02


def speech_level(audio: Audio, fps: float, n: int, level_ref: float | None = None) -> np.ndarray:
    """Loudness per frame in [0, ~1.1]: the RMS envelope over the loudest speech of the last 1.5 s.

    Args:
        level_ref: a fixed RMS for "fully loud" instead of the adaptive reference.
    """
    env = audio.rms_envelope(fps, n).astype(np.float64)
    if level_ref is not None:
        ref = np.full(n, float(level_ref))
    else:
        back, ahead = int(round(1.5 * fps)), int(round(0.15 * fps))
        padded = np.concatenate([np.zeros(back), env, np.zeros(ahead)])
        ref = np.lib.stride_tricks.sliding_window_view(padded, back + ahead + 1).max(axis=1)
        ref = np.maximum(_gauss(ref, 0.06 * fps), FLOOR_RMS)
    gate = _smoothstep((env - SILENCE_RMS) / (2 * SILENCE_RMS))
    level = np.clip(env / (0.5 * ref), 0.0, 1.1) * gate
    return np.clip((level - 0.06) / 0.94, 0.0, None)


def pitch_track(audio: Audio, fps: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(f0 in Hz, voicing in [0, 1]) per frame, by autocorrelation over 40 ms around each frame centre.

    Each frame's 40 ms are averaged down to 8-11 kHz (plenty for voice pitch) on their own, so a
    frame's pitch never depends on where the audio starts.
    """
    x = audio.samples.astype(np.float64)
    factor = 1
    while audio.sample_rate / (2 * factor) >= 8000:
        factor *= 2
    sr = audio.sample_rate / factor
    win = int(0.04 * sr)
    nfft = int(2 ** np.ceil(np.log2(2 * win)))
    lo, hi = int(sr / 400), min(win - 1, int(sr / 70))
    f0, voiced = np.zeros(n), np.zeros(n)
    window = np.hanning(win)
    centres = ((np.arange(n) + 0.5) * audio.sample_rate / fps).astype(np.int64)
    for a in range(0, n, 256):
        idx = centres[a : a + 256, None] - (win * factor) // 2 + np.arange(win * factor)[None, :]
        valid = (idx >= 0) & (idx < len(x))
        full = np.where(valid, x[np.clip(idx, 0, max(0, len(x) - 1))] if len(x) else 0.0, 0.0)
        seg = full.reshape(len(full), win, factor).mean(axis=2) * window
        spec = np.fft.rfft(seg, nfft, axis=1)
        ac = np.fft.irfft(spec * np.conj(spec), nfft, axis=1)[:, : hi + 2]
        energy = ac[:, :1]
        part = ac[:, lo : hi + 1]
        lag = np.argmax(part, axis=1) + lo
        peak = part[np.arange(len(part)), lag - lo] / np.maximum(energy[:, 0], 1e-12)
        f0[a : a + 256] = sr / lag
        voiced[a : a + 256] = np.clip((peak - 0.3) / 0.4, 0.0, 1.0) * (energy[:, 0] > 1e-6)
    return f0, voiced


def _phoneme_raw(phonemes: tuple[PhonemeTiming, ...], times: np.ndarray) -> np.ndarray:
    """(len(times), 7) mouth shapes of the phoneme spoken at each time (SILENT between phonemes)."""
    spans, last = [], SILENT
    for p in phonemes:
        shape = viseme_of(p.phoneme)
        if shape is None:  # stress / length marks keep the previous shape
            shape = last
        spans.append((p.start, p.end, shape))
        last = shape
    out = np.zeros(times.shape + (len(SILENT),))
    if not spans:
        return out
    # Compare on a microsecond grid, so a window of a stream (its timings shifted by its start)
    # decides every boundary exactly as the whole clip does.
    times = np.round(times * 1e6).astype(np.int64)
    starts = np.round(np.array([s[0] for s in spans]) * 1e6).astype(np.int64)
    ends = np.round(np.array([s[1] for s in spans]) * 1e6).astype(np.int64)
    shapes = np.array([s[2] for s in spans])
    idx = np.clip(np.searchsorted(starts, times, side="right") - 1, 0, len(spans) - 1)
    inside = (times >= starts[idx] - 1000) & (times < ends[idx] + 1000)
    out[inside] = shapes[idx[inside]]
    return out


def _phoneme_shapes(phonemes: tuple[PhonemeTiming, ...], centres: np.ndarray, fps: float) -> np.ndarray:
    """(n, 7) co-articulated shapes per frame: each frame averages its neighbourhood (45 ms Gaussian).

    Lip closures (press, tuck) take the strongest value within the frame's own span, so a short
    /b/ still closes the lips on at least one frame; rounding starts 40 ms early (anticipation).
    """
    dt, sigma = 0.005, 0.045
    k = np.arange(-int(3 * sigma / dt), int(3 * sigma / dt) + 1)
    w = np.exp(-0.5 * (k * dt / sigma) ** 2)
    w /= w.sum()
    raw = _phoneme_raw(phonemes, centres[:, None] + k[None, :] * dt)  # (n, K, 7)
    out = np.einsum("nkc,k->nc", raw, w)
    ahead = _phoneme_raw(phonemes, centres[:, None] + 0.04 + k[None, :] * dt)
    out[:, 2] = np.maximum(out[:, 2], np.einsum("nk,k->n", ahead[:, :, 2], w))
    span = np.abs(k * dt) <= 0.5 / fps + 0.01
    for c in (3, 5):  # press, tuck
        out[:, c] = np.maximum(out[:, c], raw[:, span, c].max(axis=1))
    return out


def _spectral_shapes(audio: Audio, fps: float, n: int) -> np.ndarray:
    """Mouth shapes guessed from the sound (no phonemes): bright sounds spread, dark ones round."""
    sr, x = audio.sample_rate, audio.samples
    hop = sr / fps
    win = int(max(256, 2 ** np.ceil(np.log2(hop))))
    freqs = np.fft.rfftfreq(win, 1 / sr)
    out = np.zeros((n, len(SILENT)))
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
    return np.stack([_gauss(out[:, c], 0.04 * fps) for c in range(out.shape[1])], axis=1)


def talk_curve(level: np.ndarray, fps: float) -> np.ndarray:
    """Speech activity in [0, 1]: 1 from 0.2 s before speech until 1.1 s after it (short pauses stay "talking")."""
    active = _smoothstep(level * 5)
    back, ahead = int(round(1.1 * fps)), int(round(0.2 * fps))
    padded = np.concatenate([np.zeros(back), active, np.zeros(ahead)])
    held = np.lib.stride_tricks.sliding_window_view(padded, back + ahead + 1).max(axis=1)
    return np.clip(_gauss(held, 0.08 * fps), 0.0, 1.0)


# -- events hashed from the global clock ---------------------------------------------------------
def blink_curve(t: np.ndarray, seed: int, per_minute: float) -> np.ndarray:
    """Eyelid closure at times ``t`` (s): a blink (~0.25 s) starts in each 0.5 s slot with a hashed chance.

    Two blinks in neighbouring slots make the occasional double blink.
    """
    out = np.zeros(t.shape)
    if per_minute <= 0 or t.size == 0:
        return out
    slot = 0.5
    p = min(0.9, per_minute / 60.0 * slot)
    k0, k1 = int(np.floor(t.min() / slot)) - 2, int(np.floor(t.max() / slot)) + 1
    ks = np.arange(k0, k1 + 1)
    has = _hash01(seed, 1, ks) < p
    for k in ks[has]:
        start = (k + _hash01(seed, 2, np.array([k]))[0] * 0.6) * slot
        d = t - start
        shape = np.where(d < 0, 0.0, np.where(d < 0.07, d / 0.07, np.where(d < 0.1, 1.0, 1.0 - (d - 0.1) / 0.15)))
        out = np.maximum(out, np.clip(shape, 0.0, 1.0))
    return out


def gaze_curve(t: np.ndarray, seed: int, amount: float) -> np.ndarray:
    """(len(t), 2) gaze offsets in eye widths: fixations of ~0.6–3 s joined by 40 ms saccades."""
    out = np.zeros(t.shape + (2,))
    if amount <= 0:
        return out
    slot = 0.6
    k = np.floor(t / slot).astype(np.int64)
    lookback = 6
    ks = k[:, None] - np.arange(lookback)[None, :]  # this slot and the previous ones
    jumps = _hash01(seed, 3, ks) < 0.4
    jump_t = (ks + 0.2 + 0.6 * _hash01(seed, 4, ks)) * slot
    jumps &= jump_t <= t[:, None]
    centre = _hash01(seed, 5, ks) < 0.35  # some saccades return to the camera
    tx = np.where(centre, 0.0, (2 * _hash01(seed, 6, ks) - 1) * 0.12)
    ty = np.where(centre, 0.0, (2 * _hash01(seed, 7, ks) - 1) * 0.05)
    # The latest jump at or before t and the one before it (the saccade eases between them).
    order = np.where(jumps, np.arange(lookback)[None, :], lookback)
    first = order.min(axis=1)
    masked = np.where(jumps & (np.arange(lookback)[None, :] > first[:, None]), np.arange(lookback)[None, :], lookback)
    second = masked.min(axis=1)
    rows = np.arange(len(t))

    def pick(arr, j):
        return np.where(j < lookback, arr[rows, np.minimum(j, lookback - 1)], 0.0)

    s = _smoothstep((t - pick(jump_t, first)) / 0.04)
    for c, arr in enumerate((tx, ty)):
        out[:, c] = pick(arr, second) * (1 - s) + pick(arr, first) * s
    return amount * out


def head_curve(
    t: np.ndarray, seed: int, level: np.ndarray, accent: np.ndarray, fps: float, amount: float
) -> np.ndarray:
    """(len(t), 3) head motion: x, y in face widths, roll in degrees.

    An idle sway (slow seeded sinusoids of global time), a livelier sway scaled by the speech
    energy of the last ~0.5 s, and a nod after each pitch/energy accent (a 0.5 s impulse response).
    Every part is bounded and returns to zero: the head never drifts.
    """
    out = np.zeros(t.shape + (3,))
    if amount <= 0:
        return out
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 11])  # a fixed number of draws, whatever the clip
    idle = (0.004, 0.003, 0.45)
    lively = (0.007, 0.004, 0.9)
    energy = _causal(level, 0.2, fps)
    for c in range(3):
        for _ in range(3):
            f, ph, a = rng.uniform(0.06, 0.3), rng.uniform(0, 2 * np.pi), rng.uniform(0.5, 1.0)
            out[:, c] += idle[c] / 2 * a * np.sin(2 * np.pi * f * t + ph)
        for _ in range(2):
            f, ph, a = rng.uniform(0.5, 1.4), rng.uniform(0, 2 * np.pi), rng.uniform(0.6, 1.0)
            out[:, c] += lively[c] / 2 * a * energy * np.sin(2 * np.pi * f * t + ph)
    # Nods: causal impulse response (peak 0.12 s after the accent, back to zero by 0.6 s).
    tau = 0.12
    kt = np.arange(int(np.ceil(0.6 * fps))) / fps
    h = (kt / tau) * np.exp(1.0 - kt / tau) * (1.0 - _smoothstep((kt - 0.35) / 0.25))
    nod = np.convolve(np.concatenate([np.zeros(len(h) - 1), accent]), h, mode="valid")
    side = np.sign(_value_noise(seed, 8, t, 2.0) + 1e-9)
    out[:, 1] += 0.011 * nod
    out[:, 2] += 0.6 * nod * side
    out[:, 0] += 0.003 * nod * side
    return amount * out


def accent_curve(level: np.ndarray, f0: np.ndarray, voiced: np.ndarray, fps: float) -> np.ndarray:
    """Prosodic accents per frame in [0, 1]: pitch above its recent median, and loudness onsets."""
    n = len(level)
    semis = 12.0 * np.log2(np.maximum(f0, 1.0) / 100.0)
    ok = (voiced > 0.5) & (level > 0.15)
    back = int(round(1.5 * fps))
    recent = np.lib.stride_tricks.sliding_window_view(
        np.concatenate([np.full(back, np.nan), np.where(ok, semis, np.nan)]), back + 1
    )
    seen = np.isfinite(recent).any(axis=1)
    base = semis.copy()
    if seen.any():
        base[seen] = np.nanmedian(recent[seen], axis=1)
    pitch = np.where(ok, _smoothstep((semis - base - 0.8) / 3.0), 0.0)
    onset = np.clip(level - np.concatenate([np.zeros(2), level])[:n], 0.0, None)
    raw = np.clip(0.7 * pitch * level + 0.8 * onset, 0.0, 1.0)
    # Keep peaks only (a local maximum within ±0.1 s), so each accent gives one nod.
    r = max(1, int(round(0.1 * fps)))
    padded = np.pad(raw, r)
    peak = raw >= np.lib.stride_tricks.sliding_window_view(padded, 2 * r + 1).max(axis=1)
    return np.where(peak & (raw > 0.12), raw, 0.0)


# -- expression -----------------------------------------------------------------------------------
# How each emotion (happy, sad, concerned, surprised) sets the expression channels.
_EXPRESSION_CHANNELS = (
    "smile",
    "frown",
    "cheek",
    "brow_up",
    "brow_inner",
    "brow_down",
    "eye_wide",
    "droop",
    "press",
    "jaw",
)
_EXPRESSION = np.array(
    [
        # smile frown cheek brow_up inner down  wide  droop press jaw
        [1.0, 0.0, 0.7, 0.15, 0.0, 0.0, 0.0, 0.1, 0.0, 0.0],  # happy
        [0.0, 0.9, 0.0, 0.0, 1.0, 0.15, 0.0, 0.45, 0.0, 0.0],  # sad
        [0.0, 0.35, 0.0, 0.0, 0.75, 0.7, 0.1, 0.1, 0.2, 0.0],  # concerned
        [0.0, 0.0, 0.0, 1.0, 0.2, 0.0, 0.9, 0.0, 0.0, 0.12],  # surprised
    ]
)


def expression_curves(track: ExpressionTrack, t: np.ndarray, seed: int, level: np.ndarray) -> np.ndarray:
    """(len(t), len(_EXPRESSION_CHANNELS)) channel values of the track at times ``t``."""
    weights = track.at(t)
    out = weights @ _EXPRESSION
    # A living face: the smile and brows breathe a little (slow seeded noise), brows rise with stress.
    life = 1.0 + 0.15 * _value_noise(seed, 9, t, 2.3)
    out[:, 0] *= life
    out[:, 3] += 0.25 * weights[:, 0] * level + 0.1 * level * (1 - weights[:, 1:3].max(axis=1))
    return out


# -- the drive ------------------------------------------------------------------------------------
def compute_drive(
    audio: Audio,
    fps: float,
    n: int | None = None,
    *,
    first_frame: int = 0,
    seed: int = 0,
    mouth_scale: float = 1.0,
    blink_rate: float = 15.0,
    head_motion: float = 1.0,
    gaze: float = 1.0,
    use_phonemes: bool = True,
    expression: ExpressionTrack | None = None,
    level_ref: float | None = None,
) -> Drive:
    """The per-frame weights of a clip, or of a window of a stream.

    Args:
        audio: the speech; its first sample is the start of frame ``first_frame`` (its
            ``phonemes`` are used when present and ``use_phonemes``).
        fps: frame rate.
        n: number of frames (default ``frame_count(audio.duration, fps)``).
        first_frame: global index of the audio's first frame (blinks, saccades, head motion and
            the expression track are functions of global time ``(first_frame + i + 0.5) / fps``).
        seed: seeds blinks, saccades, head motion and asymmetry.
        mouth_scale: scales the jaw opening.
        blink_rate: blinks per minute (0 disables).
        head_motion: scales the head motion (0 disables).
        gaze: scales the saccades (0 keeps the eyes still).
        expression: the expression over time, on the global clock (None: neutral).
        level_ref: RMS of "fully loud" speech (None: adapt to the last 1.5 s of audio).
    """
    from ...stages import frame_count

    if n is None:
        n = frame_count(audio.duration, fps)
    local = (np.arange(n) + 0.5) / fps
    t = (first_frame + np.arange(n) + 0.5) / fps
    level = _gauss(speech_level(audio, fps, n, level_ref), 0.02 * fps)
    if use_phonemes and audio.phonemes:
        shapes = _phoneme_shapes(audio.phonemes, local, fps)
    else:
        shapes = _spectral_shapes(audio, fps, n)
    v = np.zeros((n, len(CHANNELS)))
    voiced = np.clip(level * 3, 0, 1)
    press = np.clip(shapes[:, 3] * np.maximum(voiced, _smoothstep(level * 8)), 0, 1)
    v[:, _C["press"]] = press
    v[:, _C["jaw"]] = np.clip(level * (0.3 + 0.7 * shapes[:, 0]) * mouth_scale * (1 - press), 0.0, 1.0)
    v[:, _C["talk"]] = talk_curve(level, fps)
    for name, c in (("spread", 1), ("round", 2), ("lift", 4), ("tuck", 5), ("tongue", 6)):
        v[:, _C[name]] = np.clip(shapes[:, c] * voiced, 0, 1)
    # Asymmetry: a slowly changing lopsidedness, shown when the mouth moves.
    moving = np.clip(v[:, _C["jaw"]] + v[:, _C["spread"]] + v[:, _C["round"]], 0, 1)
    v[:, _C["tilt"]] = 0.5 * _value_noise(seed, 12, t, 1.3) * moving
    v[:, _C["shift"]] = 0.4 * _value_noise(seed, 13, t, 1.7) * moving
    # Expression.
    track = expression if expression is not None else ExpressionTrack()
    ex = expression_curves(track, t, seed, level)
    for j, name in enumerate(_EXPRESSION_CHANNELS):
        if name == "press":
            v[:, _C["press"]] = np.maximum(v[:, _C["press"]], ex[:, j] * (1 - voiced))
        elif name == "jaw":
            v[:, _C["jaw"]] = np.clip(v[:, _C["jaw"]] + ex[:, j], 0, 1)
        else:
            v[:, _C[name]] = ex[:, j]
    # Eyes and head.
    v[:, _C["blink"]] = blink_curve(t, seed, blink_rate)
    g = gaze_curve(t, seed, gaze)
    v[:, _C["gaze_x"]], v[:, _C["gaze_y"]] = g[:, 0], g[:, 1]
    if head_motion > 0:
        f0, voicing = pitch_track(audio, fps, n)
        accent = accent_curve(level, f0, voicing, fps)
        head = head_curve(t, seed, level, accent, fps, head_motion)
        v[:, _C["head_x"]], v[:, _C["head_y"]], v[:, _C["head_roll"]] = head[:, 0], head[:, 1], head[:, 2]
    return Drive(v, int(first_frame))


def audio_window(audio: Audio, start_frame: int, stop_frame: int, fps: float) -> Audio:
    """The audio of frames [start_frame, stop_frame) (clipped to the audio), timings shifted to its start."""
    hop = audio.sample_rate / fps
    a = int(round(max(0, start_frame) * hop))
    b = int(round(min(stop_frame * hop, len(audio.samples))))
    t0, t1 = a / audio.sample_rate, b / audio.sample_rate
    phonemes = tuple(
        PhonemeTiming(p.phoneme, max(0.0, p.start - t0), min(t1, p.end) - t0)
        for p in audio.phonemes
        if p.end > t0 and p.start < t1
    )
    words = tuple(
        WordTiming(w.word, max(0.0, w.start - t0), min(t1, w.end) - t0)
        for w in audio.words
        if w.end > t0 and w.start < t1
    )
    return replace(audio, samples=audio.samples[a:b], phonemes=phonemes, words=words)


def drive_window(audio: Audio, fps: float, start: int, stop: int, **options) -> Drive:
    """The drive of global frames [start, stop) of ``audio`` computed from nearby audio only.

    Uses the audio of frames [start - context, stop + look-ahead) (:data:`DRIVE_CONTEXT_S`,
    :data:`DRIVE_LOOKAHEAD_S`), as a live stream does; ``options`` are :func:`compute_drive`'s.
    """
    ctx, ahead = int(np.ceil(DRIVE_CONTEXT_S * fps)), int(np.ceil(DRIVE_LOOKAHEAD_S * fps))
    a, b = max(0, start - ctx), stop + ahead
    piece = audio_window(audio, a, b, fps)
    total = int(round(len(piece.samples) / (audio.sample_rate / fps)))
    drive = compute_drive(piece, fps, max(total, stop - a), first_frame=a, **options)
    return drive.window(start, stop)
