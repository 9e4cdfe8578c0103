"""Weights-free quality metrics over per-frame curves (pure numpy; no video, no models).

Conventions: curves are float arrays with one value per video frame, NaN where the face was not
measured. A positive lag means the mouth moves *after* the sound (the picture is late).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "Runs",
    "best_lag_correlation",
    "blink_events",
    "mosaic",
    "StillTracker",
    "envelope_offset",
    "frame_difference",
    "frozen_runs",
    "head_motion_stats",
    "lag_correlations",
    "laplacian_variance",
    "psnr",
    "silent_stretches",
    "speech_envelope",
    "ssim",
]


def speech_envelope(samples: np.ndarray, sample_rate: int, fps: float, n_frames: int) -> np.ndarray:
    """Root-mean-square level of the audio within each video frame's period."""
    from ..values import Audio

    return Audio(np.asarray(samples, np.float32), sample_rate).rms_envelope(fps, n_frames).astype(np.float64)


def lag_correlations(x: np.ndarray, y: np.ndarray, max_lag: int) -> dict[int, float]:
    """Pearson r of ``x[t]`` against ``y[t - lag]`` for every ``|lag| <= max_lag`` (NaN pairs dropped).

    A lag with fewer than 8 valid pairs, or a constant side, gives NaN.
    """
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    n = min(len(x), len(y))
    x, y = x[:n], y[:n]
    out: dict[int, float] = {}
    for lag in range(-max_lag, max_lag + 1):
        a, b = (x[lag:], y[: n - lag]) if lag >= 0 else (x[:lag], y[-lag:])
        ok = np.isfinite(a) & np.isfinite(b)
        if ok.sum() < 8 or np.std(a[ok]) == 0 or np.std(b[ok]) == 0:
            out[lag] = float("nan")
            continue
        out[lag] = float(np.corrcoef(a[ok], b[ok])[0, 1])
    return out


def best_lag_correlation(x: np.ndarray, y: np.ndarray, max_lag: int = 3) -> tuple[float, int]:
    """The highest Pearson r of ``x[t]`` against ``y[t - lag]`` for ``|lag| <= max_lag``, and that lag.

    Ties go to the smallest ``|lag|``. Returns ``(nan, 0)`` when no lag can be measured.
    """
    best = (float("-inf"), 0)
    for lag, r in sorted(lag_correlations(x, y, max_lag).items(), key=lambda kv: (abs(kv[0]), kv[0])):
        if np.isfinite(r) and r > best[0]:
            best = (r, lag)
    return (float("nan"), 0) if best[0] == float("-inf") else best


def silent_stretches(rms: np.ndarray, fps: float, min_s: float = 0.2, rel: float = 0.05) -> list[tuple[int, int]]:
    """(start, stop) frame ranges where the level stays below ``rel`` × its peak for at least ``min_s``."""
    rms = np.asarray(rms, np.float64)
    if rms.size == 0 or rms.max() <= 0:
        return [(0, len(rms))] if len(rms) / fps >= min_s else []
    quiet = rms < rel * rms.max()
    return [(a, b) for a, b in _runs(quiet) if (b - a) / fps >= min_s]


Runs = list[tuple[int, int]]


def _runs(mask: np.ndarray) -> Runs:
    """(start, stop) of every run of True."""
    runs, start = [], None
    for i, v in enumerate(list(np.asarray(mask, bool)) + [False]):
        if v and start is None:
            start = i
        elif not v and start is not None:
            runs.append((start, i))
            start = None
    return runs


def blink_events(
    openness: np.ndarray, *, closed_below: float = 0.75, max_frames: int | None = None, window: int = 41
) -> Runs:
    """Blinks: runs of frames where eye openness drops under ``closed_below`` × its local baseline.

    The baseline is the running median over ``window`` frames (so a slow change of head pitch, which
    changes the measured openness, is not a blink). Runs separated by a single open frame are one
    blink; runs longer than ``max_frames`` (eyes kept closed) are not blinks.
    """
    o = np.asarray(openness, np.float64)
    valid = np.isfinite(o)
    if valid.sum() < 3:
        return []
    half = window // 2
    base = np.array([
        np.median(seg[np.isfinite(seg)]) if np.isfinite(seg).any() else np.nan
        for seg in (o[max(0, i - half) : i + half + 1] for i in range(len(o)))
    ])  # fmt: skip
    closed = valid & np.isfinite(base) & (base > 0) & (o < closed_below * np.where(np.isfinite(base), base, 0))
    merged: Runs = []
    for a, b in _runs(closed):
        if merged and a - merged[-1][1] <= 1:
            merged[-1] = (merged[-1][0], b)
        else:
            merged.append((a, b))
    return [(a, b) for a, b in merged if max_frames is None or b - a <= max_frames]


def head_motion_stats(pose: dict[str, np.ndarray], fps: float) -> dict[str, float]:
    """Spread and speed of the head: per-axis standard deviation and range, and mean speed.

    ``pose`` holds per-frame ``roll`` (degrees), ``yaw`` and ``pitch`` (nose offsets in inter-ocular
    units, a proxy of the angles), ``x``/``y`` (face centre in inter-ocular units, relative to the
    first measured frame) and ``scale`` (inter-ocular distance relative to the first frame).
    """
    out: dict[str, float] = {}
    for key in ("roll", "yaw", "pitch", "x", "y", "scale"):
        v = np.asarray(pose[key], np.float64)
        v = v[np.isfinite(v)]
        out[f"{key}_std"] = float(np.std(v)) if v.size else float("nan")
        out[f"{key}_range"] = float(np.ptp(v)) if v.size else float("nan")
    xy = np.stack([np.asarray(pose["x"], np.float64), np.asarray(pose["y"], np.float64)], axis=1)
    step = np.linalg.norm(np.diff(xy, axis=0), axis=1)
    step = step[np.isfinite(step)]
    out["speed_mean"] = float(step.mean() * fps) if step.size else float("nan")  # inter-ocular units / s
    roll = np.asarray(pose["roll"], np.float64)
    droll = np.abs(np.diff(roll))
    droll = droll[np.isfinite(droll)]
    out["roll_speed_mean"] = float(droll.mean() * fps) if droll.size else float("nan")  # degrees / s
    return out


def mosaic(frame: np.ndarray, grid: int = 32) -> np.ndarray:
    """The frame as a ``grid``-cell-wide mosaic of area-averaged grey levels (float32, 0–255).

    Averaging over cells removes compression noise; comparing the largest cell change keeps a small
    moving region (a mouth) visible in a large still frame.
    """
    import cv2

    h, w = frame.shape[:2]
    size = (grid, max(1, round(grid * h / w))) if w >= h else (max(1, round(grid * w / h)), grid)
    grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return cv2.resize(grey, size, interpolation=cv2.INTER_AREA)


def frame_difference(a: np.ndarray, b: np.ndarray) -> float:
    """How much the picture changed between two mosaics: the largest cell change (0–255)."""
    return float(np.abs(a.astype(np.float64) - b).max())


class StillTracker:
    """Finds stretches where the picture stays within ``tolerance`` of the stretch's first frame.

    Comparing with the stretch's first frame (not the previous frame) tells a still picture re-encoded
    by a video codec — whose repeats differ by up to about one grey level, without drifting — from a
    slow, real motion, whose small steps add up.
    """

    def __init__(self, tolerance: float = 1.5) -> None:
        self.tolerance = float(tolerance)
        self.runs: Runs = []
        self._anchor: np.ndarray | None = None
        self._start = 0
        self._n = 0

    def push(self, cells: np.ndarray) -> None:
        if (
            self._anchor is None
            or self._anchor.shape != cells.shape
            or frame_difference(cells, self._anchor) >= self.tolerance
        ):
            if self._anchor is not None:
                self.runs.append((self._start, self._n))
            self._anchor, self._start = cells, self._n
        self._n += 1

    def finish(self) -> Runs:
        """Every stretch (start, stop), covering all frames pushed."""
        if self._anchor is not None:
            self.runs.append((self._start, self._n))
            self._anchor = None
        return self.runs


def frozen_runs(still: Runs, fps: float, *, min_s: float = 0.5) -> Runs:
    """The still stretches that last at least ``min_s`` seconds."""
    return [(a, b) for a, b in still if (b - a) / fps >= min_s]


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Structural similarity of two grey images (0–255), Gaussian window σ = 1.5, K1 = 0.01, K2 = 0.03."""
    import cv2

    a, b = a.astype(np.float64), b.astype(np.float64)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def blur(x: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(x, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    den = (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    return float(np.mean(num / den))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of two images (0–255); inf when identical."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def laplacian_variance(grey: np.ndarray) -> float:
    """Sharpness: variance of the 3×3 Laplacian of a grey image (higher is sharper)."""
    import cv2

    return float(cv2.Laplacian(grey.astype(np.float64), cv2.CV_64F, ksize=1).var())


def envelope_offset(x: np.ndarray, y: np.ndarray, rate: float, max_s: float = 1.0) -> tuple[float, float]:
    """Offset in seconds of ``y`` against ``x`` (positive: ``y`` is later) from envelope cross-correlation.

    Returns ``(offset_s, r)``: the lag of the highest Pearson r within ``±max_s``, and that r.
    """
    r, lag = best_lag_correlation(np.asarray(y, np.float64), np.asarray(x, np.float64), int(round(max_s * rate)))
    return lag / rate, r
