"""SadTalker source-image preprocessing: FFHQ-style crop geometry and a 68-point landmark source.

Crop geometry (upstream ``Preprocesser.align_face`` / ``crop`` and the crop_info of
``CropAndExtract.generate``), from 68 iBUG landmarks in image pixels:

- eye centres (points 36-41, 42-47), mouth corners (48, 54), ``x = e2e - flipud(e2m)
  * [-1, 1]`` normalised and scaled by ``max(2 |e2e|, 1.8 |e2m|)``, ``y = flipud(x) *
  [-1, 1]``, centre ``eye_avg + 0.1 e2m``, quad = c -/+ x -/+ y, qsize = 2 |x|;
- shrink = floor(qsize / 512 * 0.5); only if > 1 the image is downscaled (``rsize``);
- border = max(rint(0.1 qsize), 3); ``crop`` = floor/ceil box of the quad +/- border,
  clamped to the image; the quad is moved into the crop and ``+ 0.5``;
- inner box lx = max(min(q0, q2), 0), ly = max(min(q1, q7), 0), rx = min(max(q4, q6),
  W), ry = min(max(q3, q5), W). Upstream clamps ``ry`` with the image **width**; this
  is kept by default (``fix_ry=False``) for equivalence; ``fix_ry=True`` clamps with
  the height.

Modes: ``crop`` (inner box of the outer crop), ``extcrop`` (outer crop only),
``resize`` (whole image), ``full`` / ``extfull`` (as crop / extcrop; the caller pastes
back and uses the 73-d mapping net).

Landmarks come from the face wing: any :class:`talkinghead.face.landmarks.LandmarkSource` (the
face mesh mapped to 68 points by default, or RetinaFace + AWing as upstream).

Only numpy is imported at module level; OpenCV and the landmark models load on use.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ...errors import ConfigError
from ...face.landmarks import LandmarkSource
from ...values import Face

__all__ = [
    "MODES",
    "CropGeometry",
    "CropInfo",
    "PortraitCrop",
    "crop_geometry",
    "crop_image",
    "crop_portrait",
]

MODES = ("crop", "extcrop", "resize", "full", "extfull")

@dataclass(frozen=True)
class CropGeometry:
    """Result of :func:`crop_geometry` (upstream ``align_face``).

    Attributes:
        rsize: (w, h) the image is resized to first (its own size unless shrunk).
        crop: Outer crop box (x1, y1, x2, y2) in the resized image.
        quad: Inner box (lx, ly, rx, ry) relative to ``crop`` (floats).
    """

    rsize: tuple[int, int]
    crop: tuple[int, int, int, int]
    quad: tuple[float, float, float, float]


@dataclass(frozen=True)
class CropInfo:
    """Where the animated crop sits in the source image.

    Attributes:
        mode: The preprocess mode.
        box_size: (w, h) of the pasted region (upstream ``crop_info[0]``).
        crop: Outer crop box or None (resize mode).
        quad: Inner box relative to ``crop`` or None.
        box: (ox1, oy1, ox2, oy2) inner box in the (resized) image.
        rsize: Size the source was resized to before cropping.
    """

    mode: str
    box_size: tuple[int, int]
    crop: tuple[int, int, int, int] | None
    quad: tuple[float, float, float, float] | None
    box: tuple[int, int, int, int]
    rsize: tuple[int, int]

    def as_upstream(self) -> tuple:
        """The ``crop_info`` tuple upstream passes around: (box_size, crop, quad)."""
        return (self.box_size, self.crop, None if self.quad is None else list(self.quad))


def crop_geometry(
    lm68: np.ndarray, width: int, height: int, *, output_size: int = 512, fix_ry: bool = False
) -> CropGeometry:
    """FFHQ-style crop geometry from 68 landmarks.

    Args:
        lm68: (68, 2) landmarks (x, y) in pixels.
        width, height: Image size.
        output_size: Upstream's ``xsize`` (512), only used for the shrink decision.
        fix_ry: Clamp ``ry`` with the height instead of upstream's width.

    Returns:
        A :class:`CropGeometry`.
    """
    lm = np.asarray(lm68, dtype=np.float64)
    if lm.shape != (68, 2):
        raise ValueError(f"need (68, 2) landmarks, got {lm.shape}")
    eye_left = np.mean(lm[36:42], axis=0)
    eye_right = np.mean(lm[42:48], axis=0)
    eye_avg = (eye_left + eye_right) * 0.5
    eye_to_eye = eye_right - eye_left
    mouth_avg = (lm[48] + lm[54]) * 0.5
    eye_to_mouth = mouth_avg - eye_avg
    x = eye_to_eye - np.flipud(eye_to_mouth) * [-1, 1]
    x /= np.hypot(*x)
    x *= max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8)
    y = np.flipud(x) * [-1, 1]
    c = eye_avg + eye_to_mouth * 0.1
    quad = np.stack([c - x - y, c - x + y, c + x + y, c + x - y])
    qsize = np.hypot(*x) * 2
    w, h = int(width), int(height)
    shrink = int(np.floor(qsize / output_size * 0.5))
    if shrink > 1:
        rsize = (int(np.rint(float(w) / shrink)), int(np.rint(float(h) / shrink)))
        quad /= shrink
        qsize /= shrink
    else:
        rsize = (int(np.rint(float(w))), int(np.rint(float(h))))
    iw, ih = rsize
    border = max(int(np.rint(qsize * 0.1)), 3)
    crop = (
        int(np.floor(min(quad[:, 0]))),
        int(np.floor(min(quad[:, 1]))),
        int(np.ceil(max(quad[:, 0]))),
        int(np.ceil(max(quad[:, 1]))),
    )
    crop = (max(crop[0] - border, 0), max(crop[1] - border, 0), min(crop[2] + border, iw), min(crop[3] + border, ih))
    if crop[2] - crop[0] < iw or crop[3] - crop[1] < ih:
        quad -= crop[0:2]
    q = (quad + 0.5).flatten()
    lx = max(min(q[0], q[2]), 0)
    ly = max(min(q[1], q[7]), 0)
    rx = min(max(q[4], q[6]), iw)
    ry = min(max(q[3], q[5]), ih if fix_ry else iw)
    return CropGeometry(rsize, crop, (float(lx), float(ly), float(rx), float(ry)))


def crop_image(
    image: np.ndarray,
    lm68: np.ndarray | None,
    mode: str = "crop",
    *,
    fix_ry: bool = False,
) -> tuple[np.ndarray, CropInfo]:
    """Crop a source image the way upstream does for each preprocess mode.

    Args:
        image: (H, W, 3) uint8 RGB.
        lm68: (68, 2) landmarks of the chosen face (unused in ``resize`` mode).
        mode: One of :data:`MODES`.
        fix_ry: See :func:`crop_geometry`.

    Returns:
        ``(cropped image, CropInfo)``; the crop is not yet resized to the render size.
    """
    if mode not in MODES:
        raise ConfigError(f"preprocess mode must be one of {', '.join(MODES)}; got {mode!r}")
    h, w = image.shape[:2]
    if mode == "resize":
        return image, CropInfo(mode, (w, h), None, None, (0, 0, w, h), (w, h))
    if lm68 is None:
        raise ValueError(f"mode {mode!r} needs landmarks")
    geo = crop_geometry(lm68, w, h, fix_ry=fix_ry)
    clx, cly, crx, cry = geo.crop
    lx, ly, rx, ry = (int(v) for v in geo.quad)
    img = image
    if geo.rsize != (w, h):
        import cv2

        img = cv2.resize(image, geo.rsize)
    out = img[cly:cry, clx:crx]
    if not mode.startswith("ext"):
        out = out[ly:ry, lx:rx]
    ox1, oy1, ox2, oy2 = clx + lx, cly + ly, clx + rx, cly + ry
    info = CropInfo(mode, (ox2 - ox1, oy2 - oy1), geo.crop, geo.quad, (ox1, oy1, ox2, oy2), geo.rsize)
    return np.ascontiguousarray(out), info


@dataclass(frozen=True)
class PortraitCrop:
    """What the animator needs from a portrait (result of :func:`crop_portrait`).

    Attributes:
        image: (size, size, 3) uint8 RGB source image for the renderer.
        lm68: (68, 2) landmarks of the chosen face in ``image`` pixels.
        box_size: (w, h) of the face region in the portrait (upstream ``crop_info[0]``); the
            output frames of the non-full modes keep its aspect ratio.
        paste_box: (x1, y1, x2, y2) in the portrait's pixels where full modes paste the frame.
        info: The :class:`CropInfo` of the crop.
        face: The chosen face (box, score, 68 landmarks in portrait pixels).
    """

    image: np.ndarray
    lm68: np.ndarray
    box_size: tuple[int, int]
    paste_box: tuple[int, int, int, int]
    info: CropInfo
    face: Face


def crop_portrait(
    image: np.ndarray,
    *,
    mode: str = "crop",
    size: int = 256,
    multiple_faces: str = "largest",
    landmarks: LandmarkSource | None = None,
    min_face: int | None = None,
    fix_ry: bool = False,
) -> PortraitCrop:
    """Find the face, crop the portrait for one preprocess mode and resize it to ``size``.

    Args:
        image: (H, W, 3) uint8 RGB portrait.
        mode: One of :data:`MODES`.
        size: Render size (256 or 512); the crop is resized to ``size`` x ``size``.
        multiple_faces: ``"largest"`` or ``"refuse"`` (see :func:`talkinghead.face.selection.select_face`).
        landmarks: The landmark source (default: a new :class:`~talkinghead.face.landmarks.Mesh68Landmarks`,
            closed after use).
        min_face: Smallest accepted face size in pixels (default ``MIN_FACE_PIXELS``).
        fix_ry: See :func:`crop_geometry`.

    Returns:
        A :class:`PortraitCrop`. Landmarks of the resized crop are the portrait landmarks
        mapped through the crop (upstream detects them again on the crop; the mapping is
        cheaper and exact for the crop geometry).

    Raises:
        NoFaceError, MultipleFacesError, FaceTooSmallError: from the face selection.
        ConfigError: an unknown mode.
    """
    from ...face.landmarks import Mesh68Landmarks
    from ...face.selection import MIN_FACE_PIXELS, select_face

    if mode not in MODES:
        raise ConfigError(f"preprocess mode must be one of {', '.join(MODES)}; got {mode!r}")
    img = np.ascontiguousarray(np.asarray(image, dtype=np.uint8))
    if img.ndim != 3 or img.shape[2] != 3:
        raise ConfigError(f"the portrait must be an (H, W, 3) RGB image, got shape {img.shape}")
    own = landmarks is None
    src = Mesh68Landmarks() if landmarks is None else landmarks
    try:
        faces = src.detect(img)
    finally:
        if own:
            src.close()  # type: ignore[union-attr]
    face = select_face(faces, multiple_faces=multiple_faces,
                       min_face=MIN_FACE_PIXELS if min_face is None else min_face)
    lm = np.asarray(face.landmarks, dtype=np.float64).reshape(-1, 2)
    if lm.shape != (68, 2):
        raise ValueError(f"the landmark source gave {lm.shape} landmarks; 68 are needed")
    crop, info = crop_image(img, lm, mode, fix_ry=fix_ry)
    h, w = img.shape[:2]
    sx, sy = info.rsize[0] / w, info.rsize[1] / h  # the crop lives in the (maybe shrunk) image
    if info.crop is None:  # resize mode: the whole image
        ox, oy = 0.0, 0.0
    else:
        ox, oy = info.crop[0], info.crop[1]
        if not mode.startswith("ext"):
            ox, oy = ox + int(info.quad[0]), oy + int(info.quad[1])  # type: ignore[index]
    ch, cw = crop.shape[:2]
    if ch < 2 or cw < 2:
        from ...errors import FaceTooSmallError

        raise FaceTooSmallError("the face crop is empty; use a photo where the whole face is inside the image")
    import cv2

    resized = cv2.resize(crop, (size, size)) if (cw, ch) != (size, size) else crop
    lm_crop = np.stack([(lm[:, 0] * sx - ox) * size / cw, (lm[:, 1] * sy - oy) * size / ch], 1)
    if mode.startswith("ext") and info.crop is not None:
        box = info.crop
    else:
        box = info.box
    # full modes paste into the original portrait: map the (maybe shrunk) box back
    paste_box = (int(round(box[0] / sx)), int(round(box[1] / sy)), int(round(box[2] / sx)), int(round(box[3] / sy)))
    return PortraitCrop(np.ascontiguousarray(resized), lm_crop.astype(np.float32), info.box_size, paste_box,
                        info, face)


def face_angle_deg(lm68: np.ndarray) -> float:
    """In-plane roll of a face from its eye centres, in degrees (diagnostics)."""
    lm = np.asarray(lm68, dtype=np.float64)
    d = lm[42:48].mean(0) - lm[36:42].mean(0)
    return math.degrees(math.atan2(d[1], d[0]))
