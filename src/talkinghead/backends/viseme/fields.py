"""Per-portrait deformation fields: computed once from the face mesh, combined per frame.

Every field is *backward*: for each output pixel it gives the offset, in pixels, of the portrait
pixel to sample (``source = pixel + field``). A frame's displacement is a weighted sum of these,
applied with one ``cv2.remap`` over the head region of interest (ROI). Each field is stored over
the small part of the ROI where it is non-zero (:class:`Field`), so a frame only pays for what
moves.

Geometry is expressed in a face-aligned frame: ``u`` runs along the eye line (left to right in
the image) and ``v`` points down the face, both in pixels, with the origin between the inner
lips. The fields (their weights come from :mod:`.timeline`'s channels):

* mouth openings — ``jaw0..3`` (the jaw and lower lip down, the upper lip a little up, at four
  opening levels, each inverted exactly), ``lift`` (upper lip up: the upper teeth show), ``tuck``
  (the lower lip rolls up under the upper teeth, /f v/) and ``press`` (the lips meet and press,
  /m b p/, even on a portrait that shows its teeth). The renderer paints the mouth interior in the
  gap these open;
* mouth shapes — ``spread`` (corners out, /i/), ``round`` (corners in, lips pushed out, /u/),
  ``smile`` and ``frown`` (corners up and out / down), ``tilt`` (one corner up, one down) and
  ``shift`` (the mouth sideways);
* face — ``cheek`` (cheeks up, lower lids pushed up), ``brow_up``, ``brow_inner`` (inner ends up),
  ``brow_down`` (inner ends down and together), ``eye_wide`` (upper lids up);
* eyes — ``blink0..3``: the upper lid's own skin, from the lash line up to below the brow, is
  stretched down over the eye (four closure levels; no paint); ``gaze_x``, ``gaze_y``: the eye's
  content moves inside the lids by one pixel;
* head — ``head_x``, ``head_y`` (one pixel) and ``head_roll`` (one degree about the neck), fading
  smoothly to zero outside the head so the background and body stay put.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ...face import mesh as L

__all__ = ["FaceGeometry", "Field", "FieldBank", "build_fields", "smoothstep", "JAW_LEVELS", "BLINK_LEVELS"]

#: Jaw openings precomputed (fractions of the full opening); a frame blends the two around it.
JAW_LEVELS = (0.25, 0.5, 0.75, 1.0)
#: Eyelid closures precomputed; a frame blends the two around it.
BLINK_LEVELS = (0.25, 0.5, 0.75, 1.0)
#: How far the upper lip moves up relative to the jaw opening.
UPPER_LIP_RATIO = 0.15
#: Upper-lip raise of ``lift`` at weight 1, in mouth widths.
LIFT = 0.075

# More face-mesh indices (canonical topology): brows (outer → inner), iris centres and rings.
BROWS = ((70, 63, 105, 66, 107), (300, 293, 334, 296, 336))
BROWS_LOW = ((46, 53, 52, 65, 55), (276, 283, 282, 295, 285))
IRISES = ((468, (469, 470, 471, 472)), (473, (474, 475, 476, 477)))
LIPS_OUTER_TOP, LIPS_OUTER_BOTTOM = 0, 17


def smoothstep(x: np.ndarray) -> np.ndarray:
    """0 below 0, 1 above 1, a smooth cubic between."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _falloff(x: np.ndarray) -> np.ndarray:
    """1 at 0, 0 from 1 on, smooth."""
    return 1.0 - smoothstep(x)


def _curve(u_pts: np.ndarray, v_pts: np.ndarray):
    order = np.argsort(u_pts)
    return u_pts[order], v_pts[order]


@dataclass
class Eye:
    """One eye in the face frame: lid curves, corners, opening, iris and the brow above it."""

    upper: tuple[np.ndarray, np.ndarray]
    lower: tuple[np.ndarray, np.ndarray]
    corners: tuple[float, float]
    height: float  # largest lid opening
    centre: np.ndarray  # (u, v): the iris centre
    iris_r: float
    brow: tuple[np.ndarray, np.ndarray]  # brow centre line (u sorted, v)

    @property
    def width(self) -> float:
        return self.corners[1] - self.corners[0]

    def top(self, u: np.ndarray) -> np.ndarray:
        return np.interp(u, *self.upper)

    def bottom(self, u: np.ndarray) -> np.ndarray:
        return np.interp(u, *self.lower)

    def opening(self, u: np.ndarray) -> np.ndarray:
        c0, c1 = self.corners
        return np.where((u > c0) & (u < c1), np.maximum(self.bottom(u) - self.top(u), 0.0), 0.0)

    def brow_v(self, u: np.ndarray) -> np.ndarray:
        return np.interp(u, *self.brow)


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
    corners: tuple[np.ndarray, np.ndarray]  # outer mouth corners (u, v), left then right
    mid_u: np.ndarray  # the split line of the jaw (between the lips; above the lower lip when teeth show)
    mid_v: np.ndarray
    upper_inner: tuple[np.ndarray, np.ndarray]
    lower_inner: tuple[np.ndarray, np.ndarray]
    rest_gap: float  # largest distance between the inner lips at rest
    upper_lip: float  # upper-lip thickness
    lower_lip: float  # lower-lip thickness
    chin_v: float
    nose_v: float
    forehead_v: float
    face_center: np.ndarray  # (u, v)
    eyes: tuple[Eye, Eye]  # left, right in the image

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
        mouth_width = float(abs(u[291] - u[61]))
        rest_gap = float((vl - vu).max())
        # A portrait showing its teeth keeps them with the upper jaw: the jaw splits above the lower lip.
        split = np.maximum(vl - 0.6, (vu + vl) / 2) if rest_gap > 0.06 * mouth_width else (vu + vl) / 2
        eyes = []
        n_pts = len(pts)
        for upper, lower in ((L.EYE_A_UPPER, L.EYE_A_LOWER), (L.EYE_B_UPPER, L.EYE_B_LOWER)):
            uu, vu_ = _curve(u[list(upper)], v[list(upper)])
            ul, vl_ = _curve(u[list(lower)], v[list(lower)])
            ec0, ec1 = max(uu[0], ul[0]), min(uu[-1], ul[-1])
            us = np.linspace(ec0, ec1, 24)
            height = float(max(1.0, np.max(np.interp(us, ul, vl_) - np.interp(us, uu, vu_))))
            centre = np.array([(ec0 + ec1) / 2, float(np.mean(np.concatenate([vu_, vl_])))])
            iris_r = 0.2 * (ec1 - ec0)
            if n_pts >= 478:  # refined mesh: irises
                cand = [(np.hypot(u[c] - centre[0], v[c] - centre[1]), c, ring) for c, ring in IRISES]
                _, c, ring = min(cand)
                centre = np.array([u[c], v[c]])
                iris_r = float(np.mean(np.hypot(u[list(ring)] - u[c], v[list(ring)] - v[c])))
            brows = []
            for top_idx, low_idx in zip(BROWS, BROWS_LOW):
                bu = (u[list(top_idx)] + u[list(low_idx)]) / 2
                bv = (v[list(top_idx)] + v[list(low_idx)]) / 2
                brows.append((abs(bu.mean() - centre[0]), _curve(bu, bv)))
            brow = min(brows, key=lambda b: b[0])[1]
            eyes.append(Eye((uu, vu_), (ul, vl_), (float(ec0), float(ec1)), height, centre, iris_r, brow))
        eyes.sort(key=lambda e: e.centre[0])
        oval = list(L.FACE_OVAL)
        corner_l, corner_r = sorted((loc[61], loc[291]), key=lambda p: p[0])
        return cls(
            origin=origin,
            eu=eu,
            ev=ev,
            mouth_width=mouth_width,
            face_width=float(u[oval].max() - u[oval].min()),
            face_height=float(v[L.CHIN] - v[L.FOREHEAD]),
            mouth_u=(c0, c1),
            corners=(np.asarray(corner_l, float), np.asarray(corner_r, float)),
            mid_u=mid_u,
            mid_v=split,
            upper_inner=up,
            lower_inner=lo,
            rest_gap=rest_gap,
            upper_lip=float(max(2.0, v[13] - v[LIPS_OUTER_TOP])),
            lower_lip=float(max(2.0, v[LIPS_OUTER_BOTTOM] - v[14])),
            chin_v=float(v[L.CHIN]),
            nose_v=float(v[L.NOSE_BASE]),
            forehead_v=float(v[L.FOREHEAD]),
            face_center=np.array([(u[oval].max() + u[oval].min()) / 2, (v[L.CHIN] + v[L.FOREHEAD]) / 2]),
            eyes=(eyes[0], eyes[1]),
        )

    # -- pieces of the mouth model, shared by the fields and the mouth-interior renderer --------
    @property
    def teeth_visible(self) -> bool:
        """Whether the portrait shows its teeth (an open smile)."""
        return self.rest_gap > 0.06 * self.mouth_width

    def midline(self, u: np.ndarray) -> np.ndarray:
        """The line where the mouth opens (between the lips; just above the lower lip when teeth show)."""
        return np.interp(u, self.mid_u, self.mid_v)

    def mouth_x(self, u: np.ndarray) -> np.ndarray:
        """Position across the mouth: -1 and 1 at the corners, 0 at the centre (beyond: |x| > 1)."""
        c0, c1 = self.mouth_u
        return (u - (c0 + c1) / 2) / max(1.0, (c1 - c0) / 2)

    def lens(self, u: np.ndarray) -> np.ndarray:
        """How far the lips part at ``u``: 1 at the mouth centre, 0 at and beyond the corners."""
        x = self.mouth_x(u)
        return np.clip(1.0 - x * x, 0.0, 1.0) ** 0.7

    @property
    def lift_px(self) -> float:
        return LIFT * self.mouth_width

    @property
    def tuck_px(self) -> float:
        return 0.55 * self.lower_lip

    @property
    def reach_up(self) -> float:
        return max(2.0, 0.9 * (0.0 - self.nose_v))

    @property
    def reach_down(self) -> float:
        return max(2.0, 0.6 * self.chin_v)


@dataclass
class Field:
    """One field over a window ``(y0, y1, x0, x1)`` of the head ROI: float32 (y1 - y0, x1 - x0, 2)."""

    name: str
    window: tuple[int, int, int, int]
    data: np.ndarray


@dataclass
class FieldBank:
    """The fields of one portrait over its head ROI, ready to combine.

    Attributes:
        roi: (x0, y0, x1, y1) of the head region in the portrait.
        fields: the fields, each over its own window of the ROI.
        grid: float32 (h, w, 2) absolute pixel coordinates of the ROI.
        jaw_px: full jaw opening in pixels.
        mouth_roi: (x0, y0, x1, y1) where the mouth interior can appear, relative to the ROI.
    """

    geometry: FaceGeometry
    roi: tuple[int, int, int, int]
    fields: list[Field]
    grid: np.ndarray
    jaw_px: float
    mouth_roi: tuple[int, int, int, int]
    jaw_scale: float = 1.0

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

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
    above = -UPPER_LIP_RATIO * q * (1.0 - smoothstep((m - v) / g.reach_up))
    return amp * face * np.where(v >= m, below, above)


def _invert_jaw(g: FaceGeometry, u: np.ndarray, v: np.ndarray, amp: float) -> np.ndarray:
    """Solve ``t = f(u, v - t)`` per output pixel (bisection; ``t - f`` increases with ``t``)."""
    lo = np.full(u.shape, -UPPER_LIP_RATIO * amp - 1.0, np.float64)
    hi = np.full(u.shape, amp + 1.0, np.float64)
    for _ in range(24):
        mid = (lo + hi) / 2
        pos = mid - _jaw_forward(g, u, v - mid, amp) > 0
        hi = np.where(pos, mid, hi)
        lo = np.where(pos, lo, mid)
    return (lo + hi) / 2


Forward = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def _backward(forward: Forward, u: np.ndarray, v: np.ndarray, iterations: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Backward offsets (du, dv) of a smooth forward displacement: solve ``s + D(s) = p`` by iteration."""
    bu, bv = np.zeros_like(u), np.zeros_like(v)
    for _ in range(iterations):
        du, dv = forward(u + bu, v + bv)
        bu, bv = -du, -dv
    return bu, bv


def _corner_bumps(g: FaceGeometry, ru: float, rv: float, du: float, dv: float, mirror_v: bool = False) -> Forward:
    """Forward motion of both mouth corners by (±du outwards, dv), fading over an ellipse (ru, rv)."""

    def forward(u, v):
        out_u, out_v = np.zeros_like(u), np.zeros_like(v)
        for side, (cu, cv) in zip((-1.0, 1.0), g.corners):
            b = _falloff(np.sqrt(((u - cu) / ru) ** 2 + ((v - cv) / rv) ** 2))
            out_u += side * du * b
            out_v += (side if mirror_v else 1.0) * dv * b
        return out_u, out_v

    return forward


def _lip_centres(g: FaceGeometry, ru: float, rv: float, up: float, down: float) -> Forward:
    """Forward motion of the upper-lip centre by ``-up`` and the lower-lip centre by ``down`` (protrusion)."""
    uc = (g.mouth_u[0] + g.mouth_u[1]) / 2
    vt, vb = -g.upper_lip * 0.5, g.lower_lip * 0.5

    def forward(u, v):
        bt = _falloff(np.sqrt(((u - uc) / ru) ** 2 + ((v - vt) / rv) ** 2))
        bb = _falloff(np.sqrt(((u - uc) / ru) ** 2 + ((v - vb) / rv) ** 2))
        return np.zeros_like(u), -up * bt + down * bb

    return forward


def _sum(*forwards: Forward) -> Forward:
    def forward(u, v):
        du, dv = np.zeros_like(u), np.zeros_like(v)
        for f in forwards:
            a, b = f(u, v)
            du, dv = du + a, dv + b
        return du, dv

    return forward


def _brow_forward(g: FaceGeometry, kind: str) -> Forward:
    """Forward motion of both brows (``up``, ``inner`` up, ``down``: inner ends down and together)."""
    cx = g.face_center[0]

    def forward(u, v):
        du, dv = np.zeros_like(u), np.zeros_like(v)
        for eye in g.eyes:
            bu, bvv = eye.brow
            centre, half = (bu[0] + bu[-1]) / 2, max(2.0, (bu[-1] - bu[0]) / 2)
            gap = max(2.0, float(np.mean(eye.top(bu) - bvv)))  # brow to lash line
            horiz = _falloff((np.abs(u - centre) - 0.6 * half) / (0.8 * half))
            inward = np.sign(cx - centre)
            inner = smoothstep(0.5 + 0.6 * inward * (u - centre) / half)
            vb = eye.brow_v(np.clip(u, bu[0], bu[-1]))
            lash = eye.top(np.clip(u, eye.corners[0], eye.corners[1]))
            below = _falloff((v - vb) / np.maximum(lash - vb, 1.0))
            above = _falloff((vb - v) / (1.6 * gap))
            vert = np.where(v >= vb, below, above)
            if kind == "up":
                dv -= 0.35 * gap * horiz * vert
            elif kind == "inner":
                dv -= 0.42 * gap * horiz * inner * vert
            else:
                dv += 0.28 * gap * horiz * inner * vert
                du += inward * 0.22 * half * horiz * inner * vert
        return du, dv

    return forward


def _eye_wide_forward(g: FaceGeometry) -> Forward:
    """Forward motion of the upper lids up (the eye opens wider), fading to the brow and the iris centre."""

    def forward(u, v):
        dv = np.zeros_like(v)
        for eye in g.eyes:
            c0, c1 = eye.corners
            mid, half = (c0 + c1) / 2, (c1 - c0) / 2
            horiz = _falloff((np.abs(u - mid) - 0.35 * half) / (0.65 * half))
            top = eye.top(np.clip(u, c0, c1))
            vb = eye.brow_v(u)
            ve = eye.centre[1]
            inside = smoothstep((ve - v) / np.maximum(ve - top, 1.0))
            above = _falloff((top - v) / np.maximum(top - vb, 2.0))
            dv -= 0.3 * eye.height * horiz * np.where(v >= top, inside, above)
        return np.zeros_like(u), dv

    return forward


def _cheek_forward(g: FaceGeometry) -> Forward:
    """Forward motion of the cheeks up (and a little out): the lower lids rise, the eyes narrow."""
    fw = g.face_width

    def forward(u, v):
        du, dv = np.zeros_like(u), np.zeros_like(v)
        for side, eye in zip((-1.0, 1.0), g.eyes):
            bottom = float(np.max(eye.lower[1]))
            vc = bottom + 0.5 * max(2.0, g.nose_v - bottom)
            rv = 1.7 * max(2.0, vc - bottom)
            ru = 0.75 * eye.width
            b = _falloff(np.sqrt(((u - eye.centre[0]) / ru) ** 2 + ((v - vc) / rv) ** 2))
            dv -= 0.045 * fw * b
            du += side * 0.01 * fw * b
        return du, dv

    return forward


def _blink_backward(eye: Eye, u: np.ndarray, v: np.ndarray, closure: float) -> np.ndarray:
    """Backward offset along ``v`` closing ``eye`` by ``closure``: the upper lid's skin stretches down.

    Per column, the band from ``skin`` (above the lash line) to the lash line is stretched down to
    the lid's new edge; the eyeball below the edge stays where it is; the lower lid rises a little.
    """
    c0, c1 = eye.corners
    uc = np.clip(u, c0, c1)
    top = eye.top(uc)
    # The opening, tapered to zero at the corners so the lid folds smoothly there.
    h = eye.opening(u) * smoothstep(np.minimum(u - c0, c1 - u) / (0.12 * eye.width))
    bottom = top + h
    # The lid skin stretched down: up to 1.3 eye heights above the lash line, never the brow (or a
    # glasses rim lying on it).
    brow_gap = float(np.mean(eye.top(eye.brow[0]) - eye.brow[1]))
    span = min(1.3 * eye.height + 1.0, max(2.0, 0.55 * brow_gap))
    skin = top - span
    low = bottom - 0.12 * h * closure
    edge = top + closure * (low - top)
    stretch = skin + (v - skin) * (top - skin) / np.maximum(edge - skin, 1e-6)
    reach = 0.6 * eye.height + 1.0
    lifted = v + (bottom - low) * _falloff((v - low) / reach)
    src = np.where(v < skin, v, np.where(v < edge, stretch, np.where(v < low, v, lifted)))
    return src - v


def build_fields(face: np.ndarray | FaceGeometry, image_size: tuple[int, int], *, jaw_scale: float = 1.0) -> FieldBank:
    """Build the deformation fields of one face.

    Args:
        face: its geometry, or its (478, 2) face-mesh landmarks in pixels (468 without irises works).
        image_size: (width, height) of the portrait.
        jaw_scale: multiplies the full jaw opening (``0.24 × mouth width``).
    """
    g = face if isinstance(face, FaceGeometry) else FaceGeometry.from_landmarks(face)
    w_img, h_img = image_size
    fw, fh, mw = g.face_width, g.face_height, g.mouth_width
    jaw_px = 0.24 * mw * float(jaw_scale)
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
    # Keep every field exactly zero on the ROI border (a seamless paste).
    border = np.minimum.reduce([gx - x0, x1 - 1 - gx, gy - y0, y1 - 1 - gy])
    taper = smoothstep(border / 3.0)
    fields: list[Field] = []

    def window(u_lo: float, u_hi: float, v_lo: float, v_hi: float) -> tuple[int, int, int, int]:
        """The ROI rows/columns (y0, y1, x0, x1) covering a rectangle of the face frame."""
        pts = g.origin + np.array([[a, b] for a in (u_lo, u_hi) for b in (v_lo, v_hi)]) @ np.stack([g.eu, g.ev])
        ya, yb = int(np.floor(pts[:, 1].min())) - 2 - y0, int(np.ceil(pts[:, 1].max())) + 3 - y0
        xa, xb = int(np.floor(pts[:, 0].min())) - 2 - x0, int(np.ceil(pts[:, 0].max())) + 3 - x0
        return max(0, ya), min(y1 - y0, yb), max(0, xa), min(x1 - x0, xb)

    def add(name: str, win: tuple[int, int, int, int], a_u: np.ndarray, a_v: np.ndarray) -> None:
        """Store a field given over ``win`` (components along eu, ev), cropped to where it is non-zero."""
        ya, _, xa, _ = win
        t = taper[win[0] : win[1], win[2] : win[3]]
        data = ((a_u * t)[..., None] * g.eu + (a_v * t)[..., None] * g.ev).astype(np.float32)
        nz = np.abs(data).max(axis=-1) > 1e-3
        if not nz.any():
            fields.append(Field(name, (0, 1, 0, 1), np.zeros((1, 1, 2), np.float32)))
            return
        ys_, xs_ = np.flatnonzero(nz.any(axis=1)), np.flatnonzero(nz.any(axis=0))
        crop = (int(ys_[0]), int(ys_[-1]) + 1, int(xs_[0]), int(xs_[-1]) + 1)
        part = np.ascontiguousarray(data[crop[0] : crop[1], crop[2] : crop[3]])
        fields.append(Field(name, (ya + crop[0], ya + crop[1], xa + crop[2], xa + crop[3]), part))

    def grid_of(win: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
        return u[win[0] : win[1], win[2] : win[3]], v[win[0] : win[1], win[2] : win[3]]

    uc = (g.mouth_u[0] + g.mouth_u[1]) / 2
    # Mouth openings, on the lower face only (the jaw inversion is the costly part of preparing).
    fall = max(3.0 * jaw_px, 0.9 * max(g.chin_v, 1.0))
    jw = window(g.face_center[0] - 0.55 * fw, g.face_center[0] + 0.55 * fw, 1.1 * min(g.nose_v, -2.0), g.chin_v + fall + jaw_px)
    ju, jv = grid_of(jw)
    for k, level in enumerate(JAW_LEVELS):
        add(f"jaw{k}", jw, np.zeros_like(ju), -_invert_jaw(g, ju, jv, level * jaw_px))
    lw = window(uc - 0.75 * mw, uc + 0.75 * mw, -g.reach_up - g.rest_gap - 2, g.reach_down + g.rest_gap + 2)
    lu, lv = grid_of(lw)
    zero = np.zeros_like(lu)
    m, q = g.midline(lu), g.lens(lu)
    up_fall = _falloff((m - lv) / g.reach_up)
    down_fall = _falloff((lv - m) / g.reach_down)
    add("lift", lw, zero, np.where(lv < m, g.lift_px * q * up_fall, 0.0))
    add("tuck", lw, zero, np.where(lv >= m, g.tuck_px * np.sqrt(q) * down_fall, 0.0))
    vu, vl = np.interp(lu, *g.upper_inner), np.interp(lu, *g.lower_inner)
    meet = (vu + np.maximum(vl, vu)) / 2
    half_gap = np.maximum(vl - vu, 0.0) / 2
    across = _falloff((np.abs(lu - uc) - 0.42 * mw) / (0.2 * mw))
    press = (half_gap + 0.15 * min(g.upper_lip, g.lower_lip)) * across
    add(
        "press",
        lw,
        zero,
        np.where(lv < meet, -press * _falloff((meet - lv) / g.reach_up), press * _falloff((lv - meet) / g.reach_down)),
    )
    # Mouth shapes and expression: smooth forward motions, inverted by iteration.
    cv_lo = min(c[1] for c in g.corners) - 0.95 * mw
    cv_hi = max(c[1] for c in g.corners) + 0.95 * mw
    mouth = window(uc - 1.3 * mw, uc + 1.3 * mw, min(cv_lo, -0.95 * mw), max(cv_hi, 0.95 * mw))
    eye_l, eye_r = g.eyes
    margin = max(eye_l.width, eye_r.width)
    top = min(float(e.brow[1].min()) - 1.7 * max(2.0, float(np.mean(e.top(e.brow[0]) - e.brow[1]))) for e in g.eyes)
    bottom = max(float(np.max(e.lower[1])) for e in g.eyes)
    low_v = g.nose_v + 0.4 * (g.nose_v - bottom) + 2
    eyes = window(eye_l.corners[0] - margin, eye_r.corners[1] + margin, top - 2, low_v)
    smooth: dict[str, tuple[tuple[int, int, int, int], Forward]] = {
        "spread": (mouth, _corner_bumps(g, 0.6 * mw, 0.4 * mw, 0.1 * mw, -0.015 * mw)),
        "round": (mouth, _sum(
            _corner_bumps(g, 0.6 * mw, 0.45 * mw, -0.13 * mw, 0.0),
            _lip_centres(g, 0.35 * mw, 0.3 * mw, 0.035 * mw, 0.045 * mw),
        )),
        "smile": (mouth, _corner_bumps(g, 0.6 * mw, 0.55 * mw, 0.07 * mw, -0.1 * mw)),
        "frown": (mouth, _corner_bumps(g, 0.5 * mw, 0.45 * mw, -0.02 * mw, 0.095 * mw)),
        "tilt": (mouth, _corner_bumps(g, 0.5 * mw, 0.45 * mw, 0.0, 0.05 * mw, mirror_v=True)),
        "shift": (mouth, lambda uu, vv: (
            0.05 * mw * _falloff(np.sqrt(((uu - uc) / (0.9 * mw)) ** 2 + (vv / (0.7 * mw)) ** 2)),
            np.zeros_like(vv),
        )),
        "cheek": (eyes, _cheek_forward(g)),
        "brow_up": (eyes, _brow_forward(g, "up")),
        "brow_inner": (eyes, _brow_forward(g, "inner")),
        "brow_down": (eyes, _brow_forward(g, "down")),
        "eye_wide": (eyes, _eye_wide_forward(g)),
    }  # fmt: skip
    for name, (win, forward) in smooth.items():
        bu, bv = _backward(forward, *grid_of(win))
        add(name, win, bu, bv)
    # Eyes: blinks stretch the upper lid's own skin down; gaze moves the eye inside its lids.
    eu_, ev_ = grid_of(eyes)
    zero = np.zeros_like(eu_)
    for k, level in enumerate(BLINK_LEVELS):
        off = sum(_blink_backward(eye, eu_, ev_, level) for eye in g.eyes)
        add(f"blink{k}", eyes, zero, off)
    gaze = np.zeros_like(eu_)
    for eye in g.eyes:
        c0, c1 = eye.corners
        mid, half = (c0 + c1) / 2, (c1 - c0) / 2
        uc_ = np.clip(eu_, c0, c1)
        rim = np.maximum(0.25 * eye.height, 1.0)
        inside = smoothstep((ev_ - eye.top(uc_)) / rim) * smoothstep((eye.bottom(uc_) - ev_) / rim)
        gaze += inside * _falloff((np.abs(eu_ - mid) - 0.3 * half) / (0.6 * half))
    add("gaze_x", eyes, -gaze, zero)
    add("gaze_y", eyes, zero, -gaze)
    # Head.
    du, dv = u - g.face_center[0], v - g.face_center[1]
    rr = np.sqrt((du / ru) ** 2 + (dv / rv) ** 2)
    head = (1.0 - smoothstep((rr - 1.0) / 0.5)) * taper
    image_field = [
        ("head_x", (-head[..., None] * np.array([1.0, 0.0])).astype(np.float32)),
        ("head_y", (-head[..., None] * np.array([0.0, 1.0])).astype(np.float32)),
    ]
    pivot = g.origin + (g.chin_v + 0.3 * fh) * g.ev
    px, py = gx - pivot[0], gy - pivot[1]
    theta = np.pi / 180.0
    image_field.append(("head_roll", (-theta * head[..., None] * np.stack([-py, px], axis=-1)).astype(np.float32)))
    for name, data in image_field:
        fields.append(Field(name, (0, data.shape[0], 0, data.shape[1]), np.ascontiguousarray(data)))
    grid = np.stack([gx, gy], axis=-1).astype(np.float32)
    # Mouth ROI: where the mouth interior can appear (relative to the head ROI).
    c0, c1 = g.mouth_u
    top, bottom = -jaw_px * 0.3 - g.lift_px - 4, jaw_px + g.rest_gap + 6
    span = np.array([[c0 - 6, top], [c1 + 6, bottom], [c0 - 6, bottom], [c1 + 6, top]])
    corners = g.origin + span[:, :1] * g.eu + span[:, 1:] * g.ev
    mx0 = int(max(x0, np.floor(corners[:, 0].min()) - 3)) - x0
    mx1 = int(min(x1, np.ceil(corners[:, 0].max()) + 3)) - x0
    my0 = int(max(y0, np.floor(corners[:, 1].min()) - 3)) - y0
    my1 = int(min(y1, np.ceil(corners[:, 1].max()) + 3)) - y0
    return FieldBank(g, (x0, y0, x1, y1), fields, grid, jaw_px, (mx0, my0, mx1, my1), float(jaw_scale))
