"""5-point face alignment: the FFHQ template, the similarity that maps a face onto it, the warp.

Follows facexlib 0.3.0's ``FaceRestoreHelper`` as pure functions:

* :func:`estimate_affine` maps five landmarks (eye, eye, nose, mouth corner, mouth corner, image-left
  first) onto the FFHQ template scaled to ``face_size``: OpenCV's ``estimateAffinePartial2D`` with
  LMEDS as upstream, or a closed-form least-squares (Umeyama) similarity.
* :func:`warp_face` crops with a bilinear warp and a constant (135, 133, 132) border.
* :func:`inverse_affine` inverts, scales by ``upscale`` and adds ``0.5 * upscale`` to the
  translation when ``upscale > 1``; it returns a new matrix (upstream mutates its stored matrix in
  place, so pasting twice shifted twice; that bug is not reproduced).

Putting restored crops back into the frame is :mod:`talkinghead.face.paste`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

__all__ = [
    "FFHQ_TEMPLATE_512",
    "BORDER_VALUE",
    "face_template",
    "estimate_affine",
    "umeyama_similarity",
    "warp_face",
    "inverse_affine",
]

#: Five FFHQ landmarks of a 512x512 aligned face (eye, eye, nose, mouth corner, mouth corner).
FFHQ_TEMPLATE_512 = np.array(
    [[192.98138, 239.94708], [318.90277, 240.1936], [256.63416, 314.01935], [201.26117, 371.41043],
     [313.08905, 371.15118]]
)
#: BGR fill of the crop outside the frame (upstream's gray); give it reversed for RGB crops.
BORDER_VALUE = (135, 133, 132)


def face_template(face_size: int = 512) -> np.ndarray:
    """The FFHQ 5-point template for a ``face_size`` square crop (512 template x face_size / 512)."""
    return FFHQ_TEMPLATE_512 * (face_size / 512.0)


def umeyama_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) mapping ``src`` to ``dst``, 2x3 float64."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    sign = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[-1] = -1
    rot = u @ np.diag(sign) @ vt
    var_s = (s**2).sum() / len(src)
    scale = (sig * sign).sum() / var_s
    m = np.empty((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = mu_d - m[:, :2] @ mu_s
    return m


def estimate_affine(
    landmarks: np.ndarray, face_size: int = 512, method: Literal["lmeds", "umeyama"] = "lmeds"
) -> np.ndarray:
    """2x3 float64 similarity taking frame landmarks ``(5, 2)`` to the template of ``face_size``.

    Args:
        landmarks: Five (x, y) points in frame pixels.
        face_size: Side of the aligned crop.
        method: ``"lmeds"`` (``cv2.estimateAffinePartial2D(..., method=cv2.LMEDS)``, upstream) or
            ``"umeyama"`` (closed-form least squares; equal to LMEDS within ~1e-4 for consistent points).
    """
    lm = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)
    tpl = face_template(face_size)
    if method == "umeyama":
        return umeyama_similarity(lm, tpl)
    if method != "lmeds":
        raise ValueError(f"unknown method {method!r}; use 'lmeds' or 'umeyama'")
    import cv2

    m = cv2.estimateAffinePartial2D(lm, tpl, method=cv2.LMEDS)[0]
    if m is None:  # degenerate points: fall back to least squares
        m = umeyama_similarity(lm, tpl)
    return m


def warp_face(
    image: np.ndarray, affine: np.ndarray, face_size: int = 512, border_value: Sequence[int] = BORDER_VALUE
) -> np.ndarray:
    """Aligned ``face_size`` crop: bilinear ``warpAffine`` with a constant border (upstream default)."""
    import cv2

    return cv2.warpAffine(image, affine, (face_size, face_size), borderMode=cv2.BORDER_CONSTANT,
                          borderValue=tuple(int(v) for v in border_value))


def inverse_affine(affine: np.ndarray, upscale: float = 1) -> np.ndarray:
    """Crop -> upscaled-frame matrix: inverse x ``upscale``, plus ``0.5 * upscale`` translation if ``upscale > 1``."""
    import cv2

    inv = cv2.invertAffineTransform(np.asarray(affine, dtype=np.float64)) * upscale
    if upscale > 1:
        inv[:, 2] += 0.5 * upscale
    return inv
