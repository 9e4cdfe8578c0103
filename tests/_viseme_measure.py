"""Helpers for the viseme tests and bench: face landmarks measured on rendered frames (via talkinghead.eval).

Every measure is in units of the inter-ocular distance (iris centre to iris centre, ``IOD``) in a
face-aligned frame (``u`` along the eyes, ``v`` down the face), so it does not depend on the
portrait's size or a small head roll.
"""

from __future__ import annotations

import numpy as np

# The measurement itself has one home, the library's eval (used by `talkinghead eval` too).
from talkinghead.eval import best_lag_correlation, frame_landmarks, silent_stretches  # noqa: F401


def face_landmarks(frames: np.ndarray) -> np.ndarray:
    """(N, 478, 2) face-mesh landmarks in pixels per frame (NaN where no face is found)."""
    return frame_landmarks(frames)


def _frame(lm: np.ndarray):
    """Per frame: origin (eye midpoint), unit vectors eu, ev and the IOD."""
    a, b = lm[:, 468], lm[:, 473]
    left = np.where((a[:, :1] <= b[:, :1]), a, b)
    right = np.where((a[:, :1] <= b[:, :1]), b, a)
    iod = np.linalg.norm(right - left, axis=1)
    eu = (right - left) / iod[:, None]
    ev = np.stack([-eu[:, 1], eu[:, 0]], axis=1)
    return (left + right) / 2, eu, ev, iod


def mouth_measures(lm: np.ndarray) -> dict[str, np.ndarray]:
    """Per frame, over the IOD: ``aperture`` (inner lips 13-14), ``width`` (corners 61-291),
    ``height`` (outer lips 0-17), ``corners`` (how far the corners sit below the inner-lip centre;
    smaller is a smile)."""
    origin, eu, ev, iod = _frame(lm)

    def uv(k):
        d = lm[:, k] - origin
        return np.sum(d * eu, axis=1) / iod, np.sum(d * ev, axis=1) / iod

    _, v13 = uv(13)
    _, v14 = uv(14)
    u61, v61 = uv(61)
    u291, v291 = uv(291)
    _, v0 = uv(0)
    _, v17 = uv(17)
    return {
        "aperture": np.linalg.norm(lm[:, 13] - lm[:, 14], axis=1) / iod,
        "width": np.abs(u291 - u61),
        "height": v17 - v0,
        "corners": (v61 + v291) / 2 - (v13 + v14) / 2,
    }


def head_pose(lm: np.ndarray) -> dict[str, np.ndarray]:
    """Per frame: ``x``, ``y`` of the eye midpoint and nose tip mean (pixels) and ``roll`` (degrees)."""
    origin, eu, _, iod = _frame(lm)
    centre = (origin + lm[:, 1]) / 2
    return {"x": centre[:, 0], "y": centre[:, 1], "roll": np.degrees(np.arctan2(eu[:, 1], eu[:, 0])), "iod": iod}


def lip_apertures(frames: np.ndarray) -> np.ndarray:
    """Inner-lip gap (landmarks 13-14) over the inter-ocular distance, per frame (NaN: no face)."""
    return mouth_measures(face_landmarks(frames))["aperture"]


# -- portraits: the two bundled photos and variants made from them ------------------------------------
def mouth_region_change(frames: np.ndarray, prepared) -> np.ndarray:
    """Per frame, the mean absolute change of the mouth region from the portrait (no landmarks).

    ``prepared`` is the viseme animator's prepared portrait; the region is its mouth ROI (where
    the interior can appear).
    """
    x0, y0, _, _ = prepared.fields.roi
    mx0, my0, mx1, my1 = prepared.fields.mouth_roi
    box = (slice(y0 + my0, y0 + my1), slice(x0 + mx0, x0 + mx1))
    still = prepared.image[box].astype(np.int16)
    return np.abs(frames[:, box[0], box[1]].astype(np.int16) - still).mean(axis=(1, 2, 3))


def portrait_variant(image: np.ndarray, kind: str) -> np.ndarray:
    """A variant of an RGB portrait: ``grey``, ``sepia``, ``side_light`` (dark on the right), ``blur``."""
    import cv2

    img = image.astype(np.float64)
    if kind == "grey":
        y = img @ np.array([0.299, 0.587, 0.114])
        return np.repeat(np.clip(y + 0.5, 0, 255).astype(np.uint8)[..., None], 3, axis=2)
    if kind == "sepia":
        y = img @ np.array([0.299, 0.587, 0.114])
        tone = np.array([1.07, 0.95, 0.74])
        return np.clip(y[..., None] * tone + 0.5, 0, 255).astype(np.uint8)
    if kind == "side_light":  # light from the left: the right half of the face falls into shade
        w = img.shape[1]
        x = (np.arange(w) - w / 2) / (0.12 * w)
        gain = 1.15 - 0.7 / (1.0 + np.exp(-x))
        return np.clip(img * gain[None, :, None] + 0.5, 0, 255).astype(np.uint8)
    if kind == "blur":
        return cv2.GaussianBlur(image, (0, 0), 2.0)
    raise ValueError(kind)
