"""Per-portrait deformation fields: computed once from the face mesh, combined per frame.

Every field is *backward*: for each output pixel of the head region of interest (ROI) it gives
the offset, in pixels, of the portrait pixel to sample (``source = pixel + field``). A frame's
field is a linear combination of these, applied with one ``cv2.remap``.

Geometry is expressed in a face-aligned frame: ``u`` runs along the eye line (left to right in
the image) and ``v`` points down the face, both in pixels, with the origin between the inner
lips. Fields:

* ``jaw`` at a few opening levels (the jaw and lower lip move down, the upper lip a little up;
  the gap opens along the line midway between the inner lips, tapering to the mouth corners).
  Each level is inverted exactly (a 1-D bisection per pixel), and a frame blends the two levels
  around its jaw weight, so partial openings stay crisp.
* ``spread`` (mouth corners outwards, as in "ee") and ``pucker`` (corners inwards, "oo").
* ``blink``: the upper eyelids slide down to the lower lids.
* ``head_x``, ``head_y`` (one pixel of translation) and ``head_roll`` (one degree about the
  neck), fading smoothly to zero outside the head so the background and body stay put.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...face import mesh as L

__all__ = ["FaceGeometry", "FieldBank", "build_fields", "smoothstep", "JAW_LEVELS"]

#: Jaw openings precomputed (fractions of the full opening); a frame blends the two around it.
JAW_LEVELS = (0.25, 0.5, 0.75, 1.0)
#: How far the upper lip moves up relative to the jaw opening.
UPPER_LIP_RATIO = 0.15


def smoothstep(x: np.ndarray) -> np.ndarray:
    """0 below 0, 1 above 1, a smooth cubic between."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _curve(u_pts: np.ndarray, v_pts: np.ndarray):
    order = np.argsort(u_pts)
    return u_pts[order], v_pts[order]


@dataclass
class FaceGeometry:
    """Face measurements in the face-aligned frame (pixels)."""

    origin: np.ndarray  # (2,) image point between the inner lips
    eu: np.ndarray  # (2,) unit vector along the eyes
    ev: np.ndarray  # (2,) unit vector down the face
    mouth_width: float
    face_width: float
    face_height: float
    mouth_u: tuple[float, float]  # inner-lip corners (u)
    mid_u: np.ndarray  # the line midway between the inner lips: u samples
    mid_v: np.ndarray  # and v values
    upper_inner: tuple[np.ndarray, np.ndarray]
    lower_inner: tuple[np.ndarray, np.ndarray]
    rest_gap: float  # largest distance between the inner lips at rest
    lower_lip: float  # lower-lip thickness
    chin_v: float
    nose_v: float
    forehead_v: float
    face_center: np.ndarray  # (u, v)
    eyes: tuple  # per eye: (u_upper, v_upper, u_lower, v_lower)

    @classmethod
    def from_landmarks(cls, pts: np.ndarray) -> FaceGeometry:
        eye_a = pts[list(L.EYE_A_UPPER + L.EYE_A_LOWER)].mean(axis=0)
        eye_b = pts[list(L.EYE_B_UPPER + L.EYE_B_LOWER)].mean(axis=0)
        left, right = (eye_a, eye_b) if eye_a[0] <= eye_b[0] else (eye_b, eye_a)
        eu = (right - left) / max(1e-6, float(np.linalg.norm(right - left)))
        ev = np.array([-eu[1], eu[0]])
        origin = (pts[13] + pts[14]) / 2.0
        loc = (pts - origin) @ np.stack([eu, ev], axis=1)  # (N, 2): u, v
        u, v = loc[:, 0], loc[:, 1]
        up = _curve(u[list(L.LIPS_INNER_UPPER)], v[list(L.LIPS_INNER_UPPER)])
        lo = _curve(u[list(L.LIPS_INNER_LOWER)], v[list(L.LIPS_INNER_LOWER)])
        c0, c1 = float(min(u[78], u[308])), float(max(u[78], u[308]))
        mid_u = np.linspace(c0, c1, 33)
        vu, vl = np.interp(mid_u, *up), np.interp(mid_u, *lo)
        vl = np.maximum(vl, vu)
        oval = list(L.FACE_OVAL)
        eyes = []
        for upper, lower in ((L.EYE_A_UPPER, L.EYE_A_LOWER), (L.EYE_B_UPPER, L.EYE_B_LOWER)):
            uu, vu_ = _curve(u[list(upper)], v[list(upper)])
            ul, vl_ = _curve(u[list(lower)], v[list(lower)])
            eyes.append((uu, vu_, ul, vl_))
        return cls(
            origin=origin,
            eu=eu,
            ev=ev,
            mouth_width=float(abs(u[291] - u[61])),
            face_width=float(u[oval].max() - u[oval].min()),
            face_height=float(v[L.CHIN] - v[L.FOREHEAD]),
            mouth_u=(c0, c1),
            mid_u=mid_u,
            mid_v=(vu + vl) / 2.0,
            upper_inner=up,
            lower_inner=lo,
            rest_gap=float((vl - vu).max()),
            lower_lip=float(max(2.0, v[17] - v[14])),
            chin_v=float(v[L.CHIN]),
            nose_v=float(v[L.NOSE_BASE]),
            forehead_v=float(v[L.FOREHEAD]),
            face_center=np.array([(u[oval].max() + u[oval].min()) / 2, (v[L.CHIN] + v[L.FOREHEAD]) / 2]),
            eyes=tuple(eyes),
        )

    # -- pieces of the mouth model, shared by the fields and the mouth-interior renderer --------
    def midline(self, u: np.ndarray) -> np.ndarray:
        return np.interp(u, self.mid_u, self.mid_v)

    def lens(self, u: np.ndarray) -> np.ndarray:
        """How far the lips part at ``u``: 1 at the mouth centre, 0 at and beyond the corners."""
        c0, c1 = self.mouth_u
        x = (u - (c0 + c1) / 2) / max(1.0, (c1 - c0) / 2)
        return np.clip(1.0 - x * x, 0.0, 1.0) ** 0.7


@dataclass
class FieldBank:
    """The fields of one portrait over its head ROI, ready to combine.

    Attributes:
        roi: (x0, y0, x1, y1) of the head region in the portrait.
        fields: float32 (K, h, w, 2) backward offsets, in the order of ``names``.
        names: field names (``jaw0..jaw3``, ``spread``, ``pucker``, ``blink``, ``head_x``...).
        grid: float32 (h, w, 2) absolute pixel coordinates of the ROI.
        jaw_px: full jaw opening in pixels.
    """

    geometry: FaceGeometry
    roi: tuple[int, int, int, int]
    fields: np.ndarray
    names: tuple[str, ...]
    grid: np.ndarray
    jaw_px: float
    mouth_roi: tuple[int, int, int, int]
    jaw_scale: float = 1.0

    def index(self, name: str) -> int:
        return self.names.index(name)


def _jaw_forward(g: FaceGeometry, u: np.ndarray, v: np.ndarray, amp: float) -> np.ndarray:
    """Downward displacement (pixels, along ``ev``) of the rest-pose point (u, v) for an opening ``amp``."""
    m = g.midline(u)
    q = g.lens(u)
    cx = g.face_center[0]
    face = 1.0 - smoothstep((np.abs(u - cx) - 0.28 * g.face_width) / (0.22 * g.face_width))
    lip = max(2.0, 1.3 * g.lower_lip)
    fall = max(3.0 * amp, 0.9 * max(g.chin_v, 1.0))
    below = (q + (1.0 - q) * smoothstep((v - m) / lip)) * (1.0 - smoothstep((v - g.chin_v) / fall))
    reach = max(2.0, 0.9 * (0.0 - g.nose_v))
    above = -UPPER_LIP_RATIO * q * (1.0 - smoothstep((m - v) / reach))
    return amp * face * np.where(v >= m, below, above)


def _invert_jaw(g: FaceGeometry, u: np.ndarray, v: np.ndarray, amp: float) -> np.ndarray:
    """Solve ``t = f(u, v - t)`` per output pixel (bisection; ``t - f`` increases with ``t``)."""
    lo = np.full(u.shape, -UPPER_LIP_RATIO * amp - 1.0, np.float64)
    hi = np.full(u.shape, amp + 1.0, np.float64)
    for _ in range(28):
        mid = (lo + hi) / 2
        pos = mid - _jaw_forward(g, u, v - mid, amp) > 0
        hi = np.where(pos, mid, hi)
        lo = np.where(pos, lo, mid)
    return (lo + hi) / 2


def _blink(g: FaceGeometry, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Backward offset along ``ev`` (negative: sample higher up) closing both eyes."""
    out = np.zeros_like(u)
    for uu, vu, ul, vl in g.eyes:
        c0, c1 = max(uu[0], ul[0]), min(uu[-1], ul[-1])
        top = np.interp(u, uu, vu)
        bot = np.interp(u, ul, vl)
        h = np.where((u > c0) & (u < c1), np.maximum(bot - top, 0.0), 0.0)
        us = np.linspace(c0, c1, 32)
        hmax = max(1.0, float(np.max(np.interp(us, ul, vl) - np.interp(us, uu, vu))))
        s = np.where(
            v > bot,
            1.0 - smoothstep((v - bot) / (0.5 * hmax)),
            np.where(v < top, 1.0 - smoothstep((top - v) / (1.8 * hmax)), 1.0),
        )
        out -= 1.05 * h * s
    return out


def build_fields(pts: np.ndarray, image_size: tuple[int, int], *, jaw_scale: float = 1.0) -> FieldBank:
    """Build the deformation fields of one face.

    Args:
        pts: (478, 2) face-mesh landmarks in pixels.
        image_size: (width, height) of the portrait.
        jaw_scale: multiplies the full jaw opening (``0.24 × mouth width``).
    """
    g = FaceGeometry.from_landmarks(pts)
    w_img, h_img = image_size
    fw, fh = g.face_width, g.face_height
    jaw_px = 0.24 * g.mouth_width * float(jaw_scale)
    # Head ellipse (u, v): radii cover hair; fields fade to zero at 1.5× the radii.
    ru, rv = 0.62 * fw, 0.64 * fh
    centre = g.origin + g.face_center[0] * g.eu + g.face_center[1] * g.ev
    reach = 1.5 * max(ru, rv) + 2
    low = g.origin + (g.chin_v + max(3.0 * jaw_px, 0.9 * g.chin_v) + 2) * g.ev
    xs = [centre[0] - reach, centre[0] + reach, low[0]]
    ys = [centre[1] - reach, centre[1] + reach, low[1]]
    x0, x1 = int(max(0, np.floor(min(xs)))), int(min(w_img, np.ceil(max(xs))))
    y0, y1 = int(max(0, np.floor(min(ys)))), int(min(h_img, np.ceil(max(ys))))
    gx, gy = np.meshgrid(np.arange(x0, x1, dtype=np.float64), np.arange(y0, y1, dtype=np.float64))
    rel = np.stack([gx - g.origin[0], gy - g.origin[1]], axis=-1)
    u, v = rel @ g.eu, rel @ g.ev

    def vec(a_u, a_v):
        return (a_u[..., None] * g.eu + a_v[..., None] * g.ev).astype(np.float32)

    names, fields = [], []
    zero = np.zeros_like(u)
    for k, level in enumerate(JAW_LEVELS):
        t = _invert_jaw(g, u, v, level * jaw_px)
        names.append(f"jaw{k}")
        fields.append(vec(zero, -t))
    c0, c1 = g.mouth_u
    uc, hw = (c0 + c1) / 2, max(1.0, (c1 - c0) / 2)
    x = np.clip((u - uc) / hw, -1.3, 1.3)
    r = np.sqrt(((u - uc) / (1.6 * hw)) ** 2 + ((v - 0.1 * hw) / (1.1 * hw)) ** 2)
    bump = 1.0 - smoothstep((r - 0.5) / 0.9)
    names.append("spread")
    fields.append(vec(-0.10 * g.mouth_width * x * bump, zero))
    r2 = np.sqrt(((u - uc) / (1.4 * hw)) ** 2 + ((v - 0.1 * hw) / (0.9 * hw)) ** 2)
    bump2 = 1.0 - smoothstep((r2 - 0.4) / 0.9)
    names.append("pucker")
    fields.append(vec(0.13 * g.mouth_width * x * bump2, zero))
    names.append("blink")
    fields.append(vec(zero, _blink(g, u, v)))
    du, dv = u - g.face_center[0], v - g.face_center[1]
    rr = np.sqrt((du / ru) ** 2 + (dv / rv) ** 2)
    head = 1.0 - smoothstep((rr - 1.0) / 0.5)
    # Keep every field exactly zero on the ROI border (a seamless paste).
    border = np.minimum.reduce([gx - x0, x1 - 1 - gx, gy - y0, y1 - 1 - gy])
    taper = smoothstep(border / 3.0)
    names += ["head_x", "head_y", "head_roll"]
    fields.append((-head[..., None] * np.array([1.0, 0.0])).astype(np.float32))
    fields.append((-head[..., None] * np.array([0.0, 1.0])).astype(np.float32))
    pivot = g.origin + (g.chin_v + 0.3 * fh) * g.ev
    px, py = gx - pivot[0], gy - pivot[1]
    theta = np.pi / 180.0
    fields.append((-theta * head[..., None] * np.stack([-py, px], axis=-1)).astype(np.float32))
    bank = np.stack(fields).astype(np.float32)
    bank *= np.asarray(taper, np.float32)[None, ..., None]
    grid = np.stack([gx, gy], axis=-1).astype(np.float32)
    # Mouth ROI: where the mouth interior can appear (relative to the head ROI).
    top, bottom = -jaw_px * 0.3 - 4, jaw_px + g.rest_gap + 6
    span = np.array([[c0 - 4, top], [c1 + 4, bottom], [c0 - 4, bottom], [c1 + 4, top]])
    corners = g.origin + span[:, :1] * g.eu + span[:, 1:] * g.ev
    mx0 = int(max(x0, np.floor(corners[:, 0].min()) - 3)) - x0
    mx1 = int(min(x1, np.ceil(corners[:, 0].max()) + 3)) - x0
    my0 = int(max(y0, np.floor(corners[:, 1].min()) - 3)) - y0
    my1 = int(min(y1, np.ceil(corners[:, 1].max()) + 3)) - y0
    return FieldBank(g, (x0, y0, x1, y1), bank, tuple(names), grid, jaw_px, (mx0, my0, mx1, my1), float(jaw_scale))
