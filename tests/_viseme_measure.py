"""Helpers for the viseme tests: lip aperture measured by mediapipe on rendered frames."""

from __future__ import annotations

import numpy as np


def lip_apertures(frames: np.ndarray) -> np.ndarray:
    """Inner-lip gap (landmarks 13-14) over the inter-ocular distance, per frame (NaN: no face)."""
    import mediapipe as mp

    out = np.full(len(frames), np.nan)
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, refine_landmarks=True, max_num_faces=1) as mesh:
        for i, frame in enumerate(frames):
            res = mesh.process(np.ascontiguousarray(frame))
            if not res.multi_face_landmarks:
                continue
            lm = res.multi_face_landmarks[0].landmark
            p = np.array([(lm[k].x, lm[k].y) for k in (13, 14, 468, 473)]) * frame.shape[1::-1]
            out[i] = np.linalg.norm(p[0] - p[1]) / np.linalg.norm(p[2] - p[3])
    return out


def best_lag_correlation(x: np.ndarray, y: np.ndarray, max_lag: int = 3) -> tuple[float, int]:
    """Highest Pearson r of x[t] against y[t - lag] for |lag| <= max_lag, and that lag."""
    best = (-2.0, 0)
    for lag in range(-max_lag, max_lag + 1):
        a, b = (x[lag:], y[: len(y) - lag]) if lag >= 0 else (x[:lag], y[-lag:])
        ok = np.isfinite(a) & np.isfinite(b)
        r = float(np.corrcoef(a[ok], b[ok])[0, 1])
        if r > best[0]:
            best = (r, lag)
    return best


def silent_stretches(rms: np.ndarray, fps: float, min_s: float = 0.2, rel: float = 0.05) -> list[tuple[int, int]]:
    """(start, stop) frame ranges where the RMS stays below ``rel`` × its peak for ≥ ``min_s``."""
    quiet = rms < rel * rms.max()
    runs, start = [], None
    for i, q in enumerate(list(quiet) + [False]):
        if q and start is None:
            start = i
        elif not q and start is not None:
            if (i - start) / fps >= min_s:
                runs.append((start, i))
            start = None
    return runs
