"""The portrait's own colours, light, blur and grain, measured once per portrait.

Everything the renderer paints (the mouth's cavity, tongue and teeth) takes its colour from these
measurements, so a greyscale photo stays exactly grey, a sepia one stays sepia, and a warm or
cold white balance carries over. Colours are kept as luma plus chroma offsets (BT.601, as JPEG):
luma sets brightness, the two chroma offsets the tint, and a grey pixel has zero chroma.

* ``lip`` — the lips' median colour (the cavity and tongue are darker versions of it);
* ``sclera`` — the whites of the eyes (the brightest white the photo's light gives a face);
* ``teeth`` — the portrait's own teeth when it shows them, else the sclera a little darker;
* ``light`` — how the lips' brightness changes from left to right (side light);
* ``blur`` — the face's blur (Gaussian sigma, pixels), measured on its strongest edges;
* ``grain`` — the noise level of its skin.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...face import mesh as L

__all__ = ["Appearance", "to_ycc", "from_ycc"]

_CHEEKS = (50, 280, 101, 330, 205, 425)


def to_ycc(rgb: np.ndarray) -> np.ndarray:
    """RGB (..., 3) → (luma, red chroma, blue chroma), chroma centred on zero."""
    rgb = np.asarray(rgb, np.float64)
    y = rgb @ np.array([0.299, 0.587, 0.114])
    return np.stack([y, 0.713 * (rgb[..., 0] - y), 0.564 * (rgb[..., 2] - y)], axis=-1)


def from_ycc(ycc: np.ndarray) -> np.ndarray:
    """Inverse of :func:`to_ycc` (zero chroma gives R = G = B exactly)."""
    y, cr, cb = ycc[..., 0], ycc[..., 1], ycc[..., 2]
    return np.stack([y + 1.403 * cr, y - 0.714 * cr - 0.344 * cb, y + 1.773 * cb], axis=-1)


def _polygon_mask(shape: tuple[int, int], *polygons: np.ndarray) -> np.ndarray:
    import cv2

    mask = np.zeros(shape, np.uint8)
    for poly in polygons:
        cv2.fillPoly(mask, [np.round(poly).astype(np.int32)], 1)
    return mask.astype(bool)


@dataclass(frozen=True)
class Appearance:
    """Colour statistics of one portrait's face (luma/chroma triples; see :func:`to_ycc`)."""

    lip: np.ndarray
    skin: np.ndarray
    sclera: np.ndarray
    teeth: np.ndarray
    light: float  # relative luma change across the mouth, left corner to right corner
    blur: float  # Gaussian sigma of the face, pixels
    grain: float  # luma noise of the skin (standard deviation)

    @classmethod
    def measure(cls, image: np.ndarray, pts: np.ndarray, teeth_visible: bool) -> Appearance:
        """Measure the portrait ``image`` (RGB uint8) around its face-mesh landmarks ``pts``."""
        import cv2

        h, w = image.shape[:2]
        ycc = to_ycc(image.reshape(-1, 3)).reshape(h, w, 3)
        outer = np.concatenate([pts[list(L.LIPS_OUTER_UPPER)], pts[list(L.LIPS_OUTER_LOWER)][::-1]])
        inner = np.concatenate([pts[list(L.LIPS_INNER_UPPER)], pts[list(L.LIPS_INNER_LOWER)][::-1]])
        lips = _polygon_mask((h, w), outer) & ~_polygon_mask((h, w), inner)
        face_w = float(np.ptp(pts[list(L.FACE_OVAL), 0]))
        lip = np.median(ycc[lips], axis=0) if lips.sum() >= 8 else np.array([0.7, 1.0, 1.0]) * ycc[h // 2, w // 2]
        # Skin: small disks on the cheeks.
        yy, xx = np.mgrid[0:h, 0:w]
        r = max(2.0, 0.035 * face_w)
        skin_mask = np.zeros((h, w), bool)
        for i in _CHEEKS:
            x, y = pts[i]
            skin_mask |= (xx - x) ** 2 + (yy - y) ** 2 <= r * r
        skin = np.median(ycc[skin_mask], axis=0) if skin_mask.any() else lip.copy()
        # Sclera: the bright part of each eye opening outside the iris.
        eyes = _polygon_mask(
            (h, w),
            np.concatenate([pts[list(L.EYE_A_UPPER)], pts[list(L.EYE_A_LOWER)][::-1]]),
            np.concatenate([pts[list(L.EYE_B_UPPER)], pts[list(L.EYE_B_LOWER)][::-1]]),
        )
        if len(pts) >= 478:
            for c, ring in ((468, (469, 470, 471, 472)), (473, (474, 475, 476, 477))):
                ir = float(np.mean(np.hypot(*(pts[list(ring)] - pts[c]).T))) * 1.15
                eyes &= (xx - pts[c, 0]) ** 2 + (yy - pts[c, 1]) ** 2 > ir * ir
        white = ycc[eyes]
        if len(white) >= 6:
            white = white[white[:, 0] >= np.percentile(white[:, 0], 60)]
            sclera = np.median(white, axis=0)
        else:
            sclera = np.array([min(235.0, skin[0] * 1.35), 0.3 * skin[1], 0.3 * skin[2]])
        sclera[0] = max(sclera[0], skin[0])
        teeth = None
        if teeth_visible:
            inside = _polygon_mask((h, w), inner)
            t = ycc[inside]
            if len(t) >= 8:
                t = t[t[:, 0] >= np.percentile(t[:, 0], 50)]
                teeth = np.median(t, axis=0)
        if teeth is None:
            # Teeth are a warm white: brighter than the skin, with a third of its tint (same white balance).
            x0, y0 = np.floor(pts.min(axis=0)).astype(int)
            x1, y1 = np.ceil(pts.max(axis=0)).astype(int)
            face = ycc[max(0, y0) : min(h, y1), max(0, x0) : min(w, x1), 0]
            high = float(np.percentile(face, 98)) if face.size else 235.0
            luma = 0.88 * min(max(0.92 * sclera[0], 1.12 * skin[0]), 0.97 * high)  # in the lips' shade
            teeth = np.array([luma, 0.7 * skin[1], 0.7 * skin[2]])
        # Side light: the lips' luma against their position across the mouth.
        light = 0.0
        if lips.sum() >= 20:
            left, right = pts[61], pts[291]
            axis = (right - left) / max(1e-6, float(np.linalg.norm(right - left)))
            pos = (np.stack([xx[lips], yy[lips]], axis=1) - (left + right) / 2) @ axis
            pos /= max(1.0, float(np.linalg.norm(right - left)) / 2)
            slope = np.polyfit(pos, ycc[lips][:, 0], 1)[0]
            light = float(np.clip(2 * slope / max(lip[0], 1.0), -0.8, 0.8))
        # Blur and grain, measured on a crop of the face.
        x0, y0 = np.floor(pts.min(axis=0)).astype(int)
        x1, y1 = np.ceil(pts.max(axis=0)).astype(int)
        crop = np.ascontiguousarray(ycc[max(0, y0) : min(h, y1), max(0, x0) : min(w, x1), 0]).astype(np.float32)
        blur = _estimate_blur(crop, cv2)
        grain = 0.0
        if skin_mask.any():
            luma = np.ascontiguousarray(ycc[..., 0]).astype(np.float32)
            resid = (luma - cv2.GaussianBlur(luma, (0, 0), 1.0))[skin_mask]
            grain = float(np.clip(1.4826 * np.median(np.abs(resid - np.median(resid))), 0.0, 8.0))
        return cls(lip, skin, sclera, teeth, light, blur, grain)


def _estimate_blur(luma: np.ndarray, cv2) -> float:
    """Gaussian sigma of the image's edges: re-blur by ``b`` and compare the strongest gradients."""
    if min(luma.shape) < 8:
        return 0.5
    b = 1.5

    def grad(img):
        gx = cv2.Sobel(img, cv2.CV_32F, 1, 0, ksize=3)
        gy = cv2.Sobel(img, cv2.CV_32F, 0, 1, ksize=3)
        return np.hypot(gx, gy)

    g0 = grad(luma)
    g1 = grad(cv2.GaussianBlur(luma, (0, 0), b))
    strong = g0 >= np.percentile(g0, 98)
    if strong.sum() < 4:
        return 0.5
    ratio = float(np.median(g0[strong] / np.maximum(g1[strong], 1e-3)))
    if ratio <= 1.01:
        return 4.0
    return float(np.clip(b / np.sqrt(ratio * ratio - 1.0), 0.3, 4.0))
