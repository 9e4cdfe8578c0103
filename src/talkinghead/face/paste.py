"""Putting rendered or restored faces back into the frame: the one paste-back of the face wing.

Two geometries, one blending rule (``base + alpha * (face - base)`` on the face's region only):

* **affine** (aligned 5-point crops, the enhancer): :func:`paste_faces` with facexlib 0.3.0's
  reference modes, and :class:`FastPaster` for video.

  ``"square"``  upstream ``use_parse=False``: warped ones-mask, erode, erode, Gaussian blur.
  ``"parse"``   upstream ``use_parse=True``: ParseNet label mask, two 101x101 blurs (sigma 11),
                10-px border zeroed, warped with the face.
  ``"parse_noblur"`` the uTalk variant: ``"parse"`` without the two blurs (hard seams).
  ``"fast"``    not upstream: a feathered face-space mask built once and cached, warped and blended
                only inside the face's bounding box; optional parse labels multiply the mask. A few
                milliseconds per frame; the warped mask is reused while the face barely moves.

  The reference modes reproduce upstream's dtype flow exactly (float32 blend for ``square``, float64
  for the parse modes, then ``astype(uint8)`` truncation).
* **box** (an axis-aligned crop rendered at another size, SadTalker's full modes): :class:`BoxPaster`.
  ``"seamless"`` is upstream's per-frame ``cv2.seamlessClone(face, full, all-255 mask, centre,
  NORMAL_CLONE)`` (a Poisson solve per frame); ``"fast"`` a feathered alpha blend whose mask is
  computed once per portrait: one resize and one fused multiply-add per frame.

Pasters hold per-stream caches (masks, the last warp): make one per video, never share one between
concurrent calls. Warps, resizes and blurs stay on OpenCV, imported on use.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from .align import inverse_affine

__all__ = [
    "PasteMode",
    "upscale_background",
    "parse_mask_face",
    "paste_faces",
    "FastPaster",
    "BoxPaster",
    "feather_mask",
]

PasteMode = Literal["square", "parse", "parse_noblur", "fast"]


def _content_key(labels: np.ndarray | None) -> str | None:
    """A digest of a label map's content (cache key; never ``id()``, which is reused after GC)."""
    if labels is None:
        return None
    arr = np.ascontiguousarray(labels)
    digest = hashlib.blake2b(arr.tobytes(), digest_size=16)
    digest.update(repr((arr.shape, arr.dtype.str)).encode())
    return digest.hexdigest()


def _blend(base: np.ndarray, face: np.ndarray, alpha: np.ndarray, *, rounding: bool) -> np.ndarray:
    """``base + alpha * (face - base)`` in float32, back to ``base``'s dtype (rounded or truncated)."""
    b = base.astype(np.float32)
    out = b + alpha * (face.astype(np.float32) - b)
    if rounding:
        return np.clip(out + 0.5, 0, 255).astype(base.dtype)
    return out.astype(base.dtype)


def upscale_background(frame: np.ndarray, upscale: float) -> np.ndarray:
    """``int(h * up) x int(w * up)`` LANCZOS4 resize, as upstream (also when ``upscale == 1``)."""
    import cv2

    h, w = frame.shape[:2]
    return cv2.resize(frame, (int(w * upscale), int(h * upscale)), interpolation=cv2.INTER_LANCZOS4)


def _square_mask(inv: np.ndarray, face_size: tuple[int, int], out_wh: tuple[int, int], upscale: float):
    import cv2

    mask = np.ones(face_size, dtype=np.float32)
    inv_mask = cv2.warpAffine(mask, inv, out_wh)
    k = int(2 * upscale)
    inv_mask_erosion = cv2.erode(inv_mask, np.ones((k, k), np.uint8))
    total = np.sum(inv_mask_erosion)
    w_edge = int(total**0.5) // 20
    center = cv2.erode(inv_mask_erosion, np.ones((w_edge * 2, w_edge * 2), np.uint8))
    soft = cv2.GaussianBlur(center, (w_edge * 2 + 1, w_edge * 2 + 1), 0)
    return inv_mask_erosion, soft


def parse_mask_face(labels: np.ndarray, out_size: int, blur: bool = True) -> np.ndarray:
    """Face-space soft mask (float64, 0..1, ``out_size`` square) from a 512 label map, as upstream."""
    import cv2

    from .parsenet import labels_to_mask

    mask = labels_to_mask(labels)
    if blur:
        mask = cv2.GaussianBlur(mask, (101, 101), 11)
        mask = cv2.GaussianBlur(mask, (101, 101), 11)
    thres = 10
    mask[:thres, :] = 0
    mask[-thres:, :] = 0
    mask[:, :thres] = 0
    mask[:, -thres:] = 0
    mask = mask / 255.0
    return cv2.resize(mask, (out_size, out_size))


def paste_faces(
    frame: np.ndarray,
    restored_faces: Sequence[np.ndarray],
    affines: Sequence[np.ndarray],
    *,
    upscale: float = 1,
    mode: PasteMode = "square",
    parse_labels: Sequence[np.ndarray] | None = None,
    parse_fn: Callable[[np.ndarray], np.ndarray] | None = None,
    upsampled_background: np.ndarray | None = None,
    fast: FastPaster | None = None,
) -> np.ndarray:
    """Paste restored crops back into ``frame`` (upscaled by ``upscale``).

    Args:
        frame: The original frame (H, W, C) uint8, any channel order (crops must use the same).
        restored_faces: One square uint8 crop per face (size = the crop size used for alignment).
        affines: The forward (frame -> crop) 2x3 matrices from :func:`estimate_affine`.
        upscale: Output scale factor.
        mode: See the module docstring.
        parse_labels: For the parse modes: a 512x512 19-class label map per face (else ``parse_fn``).
            For ``"fast"``: optional, narrows the mask to face classes.
        parse_fn: Callable restored crop -> 512x512 label map (e.g. ParseNet), used when labels are absent.
        upsampled_background: Use this instead of the LANCZOS4 upscale of ``frame`` (any size; it is resized).
        fast: A :class:`FastPaster` holding the ``"fast"`` mode's caches (one per stream of frames).

    Returns:
        The pasted frame, uint8 (uint16 if values exceed 256, as upstream), ``int(H*up) x int(W*up)``.
    """
    import cv2

    if len(restored_faces) != len(affines):
        raise ValueError("restored_faces and affines must have the same length")
    h, w = frame.shape[:2]
    h_up, w_up = int(h * upscale), int(w * upscale)
    if upsampled_background is None:
        img = upscale_background(frame, upscale)
    else:
        img = cv2.resize(upsampled_background, (w_up, h_up), interpolation=cv2.INTER_LANCZOS4)
    if mode == "fast":
        paster = fast if fast is not None else FastPaster()
        return paster.paste(img, restored_faces, affines, upscale=upscale, parse_labels=parse_labels)
    if mode not in ("square", "parse", "parse_noblur"):
        raise ValueError(f"unknown paste mode {mode!r}; use square, parse, parse_noblur or fast")

    for i, (face, affine) in enumerate(zip(restored_faces, affines)):
        inv = inverse_affine(affine, upscale)
        fs = face.shape[:2]
        inv_restored = cv2.warpAffine(face, inv, (w_up, h_up))
        if mode == "square":
            inv_mask_erosion, soft = _square_mask(inv, fs, (w_up, h_up), upscale)
            pasted = inv_mask_erosion[:, :, None] * inv_restored
            if img.ndim == 2:
                img = img[:, :, None]
            soft = soft[:, :, None]
        else:
            if parse_labels is not None:
                labels = parse_labels[i]
            elif parse_fn is not None:
                labels = parse_fn(face)
            else:
                raise ValueError(f"mode {mode!r} needs parse_labels or parse_fn")
            mask = parse_mask_face(labels, fs[0], blur=(mode == "parse"))
            soft = cv2.warpAffine(mask, inv, (w_up, h_up), flags=3)[:, :, None]
            pasted = inv_restored
        if img.ndim == 3 and img.shape[2] == 4:
            alpha = img[:, :, 3:]
            img = np.concatenate((soft * pasted + (1 - soft) * img[:, :, 0:3], alpha), axis=2)
        else:
            img = soft * pasted + (1 - soft) * img
    if np.max(img) > 256:
        return img.astype(np.uint16)
    return img.astype(np.uint8)


@dataclass
class FastPaster:
    """ROI-only paste-back with cached masks, for video (a few ms per frame).

    The face-space mask (a ones square whose border is feathered over ``feather`` of its side, times
    an optional blurred parse mask) is built once per (size, labels content). The warped mask of the
    region of interest is reused while the inverse affine moves less than ``reuse_tol`` pixels at the
    crop corners. Blending is float32 on the ROI only, truncated to uint8 like upstream.

    It keeps per-stream caches: give each video (each call) its own instance.

    Attributes:
        feather: Feather width as a fraction of the crop side.
        reuse_tol: Maximum corner displacement (output pixels) for reusing the warped mask.
    """

    feather: float = 0.06
    reuse_tol: float = 0.25
    _face_masks: dict = field(default_factory=dict, repr=False)
    _last: dict = field(default_factory=dict, repr=False)

    def face_mask(self, size: int, labels: np.ndarray | None = None) -> np.ndarray:
        """The cached face-space float32 mask for a ``size`` crop."""
        import cv2

        key = (size, _content_key(labels))
        m = self._face_masks.get(key)
        if m is None:
            edge = max(1, int(round(size * self.feather)))
            m = np.zeros((size, size), np.float32)
            m[edge:-edge, edge:-edge] = 1.0
            k = 2 * edge + 1
            m = cv2.GaussianBlur(m, (k, k), 0)
            if labels is not None:
                pm = parse_mask_face(labels, size, blur=False).astype(np.float32)
                s = max(3, (size // 16) | 1)
                pm = cv2.GaussianBlur(pm, (s * 2 + 1, s * 2 + 1), 0)
                m = m * pm
            if len(self._face_masks) > 16:
                self._face_masks.clear()
            self._face_masks[key] = m
        return m

    def paste(
        self,
        img: np.ndarray,
        restored_faces: Sequence[np.ndarray],
        affines: Sequence[np.ndarray],
        *,
        upscale: float = 1,
        parse_labels: Sequence[np.ndarray] | None = None,
    ) -> np.ndarray:
        """Blend faces into ``img`` (already upscaled, modified in place and returned)."""
        import cv2

        img = np.ascontiguousarray(img)
        h_up, w_up = img.shape[:2]
        for i, (face, affine) in enumerate(zip(restored_faces, affines)):
            size = face.shape[0]
            inv = inverse_affine(affine, upscale)
            corners = np.array([[0, 0, 1], [size, 0, 1], [0, size, 1], [size, size, 1]], np.float64) @ inv.T
            x0 = max(0, int(np.floor(corners[:, 0].min())) - 1)
            y0 = max(0, int(np.floor(corners[:, 1].min())) - 1)
            x1 = min(w_up, int(np.ceil(corners[:, 0].max())) + 2)
            y1 = min(h_up, int(np.ceil(corners[:, 1].max())) + 2)
            if x1 <= x0 or y1 <= y0:
                continue
            roi_inv = inv.copy()
            roi_inv[:, 2] -= (x0, y0)
            roi_wh = (x1 - x0, y1 - y0)
            labels = None if parse_labels is None else parse_labels[i]
            key = (i, size, _content_key(labels))
            last = self._last.get(key)
            if last is not None and last[1] == (x0, y0, x1, y1) and np.abs(last[0] - corners).max() < self.reuse_tol:
                mask = last[2]
            else:
                mask = cv2.warpAffine(self.face_mask(size, labels), roi_inv, roi_wh)
                if img.ndim == 3:
                    mask = mask[:, :, None]
                self._last[key] = (corners, (x0, y0, x1, y1), mask)
            warped = cv2.warpAffine(face, roi_inv, roi_wh)
            roi = img[y0:y1, x0:x1]
            nch = warped.shape[2] if warped.ndim == 3 else 1
            if roi.ndim == 3:
                roi[:, :, :nch] = _blend(roi[:, :, :nch], warped, mask, rounding=False)
            else:
                roi[:] = _blend(roi, warped, mask, rounding=False)
        return img


def feather_mask(h: int, w: int, feather: float = 0.08) -> np.ndarray:
    """(h, w, 1) float32 alpha: 1 inside, ramping to 0 over ``feather`` of the box at the borders."""
    fy = max(1, int(round(h * feather)))
    fx = max(1, int(round(w * feather)))
    ry = np.minimum(np.arange(h) + 1, np.arange(h)[::-1] + 1) / fy
    rx = np.minimum(np.arange(w) + 1, np.arange(w)[::-1] + 1) / fx
    m = np.minimum(np.clip(ry, 0, 1)[:, None], np.clip(rx, 0, 1)[None, :])
    return (m * m * (3 - 2 * m)).astype(np.float32)[..., None]  # smoothstep


class BoxPaster:
    """Pastes (N, h, w, 3) uint8 face frames into a full RGB image at box (x1, y1, x2, y2).

    Args:
        full: The (H, W, 3) uint8 image the frames go into (kept, not modified).
        box: Where the frames go; may reach outside the image (the outside part is dropped).
        mode: ``"fast"`` (feathered blend) or ``"seamless"`` (OpenCV Poisson clone, upstream).
    """

    def __init__(self, full: np.ndarray, box: tuple[int, int, int, int], mode: str = "fast") -> None:
        if mode not in ("fast", "seamless"):
            raise ValueError(f"unknown box paste mode {mode!r}; use 'fast' or 'seamless'")
        self.full = np.ascontiguousarray(full)
        x1, y1, x2, y2 = box
        H, W = full.shape[:2]
        self.box = (max(0, x1), max(0, y1), min(W, x2), min(H, y2))
        self.orig_box = box
        self.mode = mode
        self.alpha = feather_mask(y2 - y1, x2 - x1)

    def paste(self, frames: np.ndarray) -> np.ndarray:
        """The full image with each frame resized into the box: (N, H, W, 3) uint8."""
        import cv2

        x1, y1, x2, y2 = self.orig_box
        bw, bh = x2 - x1, y2 - y1
        out = np.empty((len(frames),) + self.full.shape, np.uint8)
        cx1, cy1, cx2, cy2 = self.box
        for i, f in enumerate(frames):
            face = cv2.resize(f, (bw, bh))
            if self.mode == "seamless":
                center = ((x1 + x2) // 2, (y1 + y2) // 2)
                mask = np.full(face.shape, 255, np.uint8)
                out[i] = cv2.cvtColor(cv2.seamlessClone(cv2.cvtColor(face, cv2.COLOR_RGB2BGR),
                                                        cv2.cvtColor(self.full, cv2.COLOR_RGB2BGR),
                                                        mask, center, cv2.NORMAL_CLONE), cv2.COLOR_BGR2RGB)
                continue
            out[i] = self.full
            sub = face[cy1 - y1:cy2 - y1, cx1 - x1:cx2 - x1]
            a = self.alpha[cy1 - y1:cy2 - y1, cx1 - x1:cx2 - x1]
            out[i, cy1:cy2, cx1:cx2] = _blend(self.full[cy1:cy2, cx1:cx2], sub, a, rounding=True)
        return out
