"""Frame rendering: combine the fields, remap the head ROI, paint the inside of the mouth.

The inside of the mouth is the only thing painted; every colour of it comes from the portrait's
:class:`~.appearance.Appearance` (its lips, teeth, eyes and skin), lit across by the portrait's
own side light, blurred like the face and given its grain. Eyelids are not painted: the blink
fields stretch the upper lid's own skin over the eye.
"""

from __future__ import annotations

import numpy as np

from .appearance import Appearance, from_ycc
from .fields import BLINK_LEVELS, JAW_LEVELS, UPPER_LIP_RATIO, FieldBank, smoothstep
from .timeline import CHANNELS

__all__ = ["FrameRenderer"]

_C = {name: i for i, name in enumerate(CHANNELS)}
#: Fields that open the mouth (the interior is painted in the gap they open).
OPENING = ("jaw0", "jaw1", "jaw2", "jaw3", "lift", "tuck")
#: Channels that map one-to-one to a field of the same name.
DIRECT = ("spread", "round", "smile", "frown", "tilt", "shift", "cheek", "brow_up", "brow_inner", "brow_down",
          "eye_wide", "tuck")  # fmt: skip


def _level_weights(value: float, levels: tuple[float, ...]) -> list[tuple[int, float]]:
    """(level index, weight) pairs that blend the two precomputed levels around ``value``."""
    grid = (0.0,) + tuple(levels)
    x = float(np.clip(value, 0.0, 1.0))
    if x <= 0.0:
        return []
    k = min(len(levels) - 1, int(np.searchsorted(grid, x, side="right")) - 1)
    a = (x - grid[k]) / (grid[k + 1] - grid[k])
    out = [(k, a)]
    if k > 0:
        out.append((k - 1, 1.0 - a))
    return out


class FrameRenderer:
    """Renders frames of one prepared portrait from rows of the drive.

    Args:
        image: the portrait, RGB uint8 (H, W, 3).
        bank: its deformation fields.
        look: its colour statistics.
        seed: seeds the grain painted into the mouth (fixed per portrait: no flicker).
    """

    def __init__(self, image: np.ndarray, bank: FieldBank, look: Appearance, seed: int = 0) -> None:
        import cv2

        self._cv2 = cv2
        self.image = image
        self.bank = bank
        self.look = look
        g = bank.geometry
        x0, y0, x1, y1 = bank.roi
        self._shape = (y1 - y0, x1 - x0, 2)
        self._grid = bank.grid
        self._index = {f.name: i for i, f in enumerate(bank.fields)}
        self._opening = {self._index[n] for n in OPENING}
        mx0, my0, mx1, my1 = bank.mouth_roi
        self._mslice = (slice(my0, my1), slice(mx0, mx1))
        rel = bank.grid[my0:my1, mx0:mx1].astype(np.float64) - g.origin
        self._mu, self._mv = (rel @ g.eu).astype(np.float32), (rel @ g.ev).astype(np.float32)
        self._teeth_visible = g.teeth_visible
        eye_w = float(np.mean([e.width for e in g.eyes]))
        self._scale = {
            "head_x": g.face_width,
            "head_y": g.face_width,
            "head_roll": 1.0,
            "gaze_x": eye_w,
            "gaze_y": eye_w,
        }
        self._grain = np.random.default_rng(seed).standard_normal((my1 - my0, mx1 - mx0)).astype(np.float32) * np.float32(look.grain)
        self._other = np.zeros(self._shape, np.float32)
        self._open = np.zeros(self._shape, np.float32)

    def weights(self, row: np.ndarray) -> dict[int, float]:
        """Field weights of one frame (by field index) from one row of the drive."""
        w: dict[int, float] = {}
        for k, a in _level_weights(row[_C["jaw"]], JAW_LEVELS):
            w[self._index[f"jaw{k}"]] = w.get(self._index[f"jaw{k}"], 0.0) + a
        lids = row[_C["blink"]] + 0.3 * row[_C["droop"]]
        for k, a in _level_weights(lids, BLINK_LEVELS):
            w[self._index[f"blink{k}"]] = w.get(self._index[f"blink{k}"], 0.0) + a
        for name in DIRECT:
            w[self._index[name]] = float(row[_C[name]])
        # A portrait that shows its teeth has them already: no upper-lip raise to reveal more, and
        # while it talks its lips relax over them (closing half the gap between syllables).
        press = float(row[_C["press"]])
        if self._teeth_visible:
            press = max(press, 0.8 * float(row[_C["talk"]]) * (1.0 - float(smoothstep(row[_C["jaw"]] / 0.45))))
        w[self._index["press"]] = press
        w[self._index["lift"]] = 0.0 if self._teeth_visible else float(row[_C["lift"]])
        for name, scale in self._scale.items():
            w[self._index[name]] = float(row[_C[name]]) * scale
        return {i: a for i, a in w.items() if abs(a) > 1e-4}

    def render(self, out: np.ndarray, row: np.ndarray) -> None:
        """Draw the frame of drive row ``row`` into ``out`` (a copy of the portrait), in place."""
        cv2 = self._cv2
        w = self.weights(row)
        if not w:
            return
        x0, y0, x1, y1 = self.bank.roi
        other, opening = self._other, self._open
        other.fill(0.0)
        opened = False
        for i, a in w.items():
            f = self.bank.fields[i]
            ya, yb, xa, xb = f.window
            target = opening if i in self._opening else other
            if target is opening and not opened:
                opening.fill(0.0)
                opened = True
            if f.data.shape == target.shape:  # a field over the whole ROI: one pass in OpenCV
                cv2.scaleAdd(f.data, float(a), target, dst=target)
            else:
                target[ya:yb, xa:xb] += np.float32(a) * f.data
        maps = cv2.add(self._grid, other)
        if opened:
            cv2.add(maps, opening, dst=maps)
        patch = cv2.remap(self.image, maps, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        if opened:
            self._mouth(patch, other[self._mslice], row)
        out[y0:y1, x0:x1] = patch

    def _mouth(self, patch: np.ndarray, rest: np.ndarray, row: np.ndarray) -> None:
        """Paint the mouth's interior (cavity, tongue, lower and upper teeth) in the gap the fields opened."""
        g, look, bank = self.bank.geometry, self.look, self.bank
        amp = float(np.clip(row[_C["jaw"]], 0, 1)) * bank.jaw_px
        lift = 0.0 if self._teeth_visible else float(row[_C["lift"]]) * g.lift_px
        if amp + lift < 0.3:
            return
        # float32 throughout (half the memory traffic of float64; the result is rounded to uint8)
        f32 = np.float32
        u = self._mu + rest[..., 0] * f32(g.eu[0]) + rest[..., 1] * f32(g.eu[1])
        v = self._mv + rest[..., 0] * f32(g.ev[0]) + rest[..., 1] * f32(g.ev[1])
        q = g.lens(u).astype(f32, copy=False)
        m = g.midline(u).astype(f32, copy=False)
        top = m - (UPPER_LIP_RATIO * amp + lift) * q
        bot = m + amp * q
        inside = (v > top - 0.5) & (v < bot + 0.5) & (bot - top > 0.3)
        if not inside.any():
            return
        # Work on the gap's bounding box only (with room for the blur).
        pad = int(np.ceil(2.5 * max(look.blur, 0.5))) + 1
        rows_, cols_ = np.flatnonzero(inside.any(axis=1)), np.flatnonzero(inside.any(axis=0))
        ra, rb = max(0, rows_[0] - pad), min(inside.shape[0], rows_[-1] + 1 + pad)
        ca, cb = max(0, cols_[0] - pad), min(inside.shape[1], cols_[-1] + 1 + pad)
        box = (slice(ra, rb), slice(ca, cb))
        u, v, q, m, top, bot = u[box], v[box], q[box], m[box], top[box], bot[box]
        gap = bot - top
        alpha = np.clip(np.minimum(v - top, bot - v) + 0.5, 0.0, 1.0) * (gap > 0.3)
        mw = g.mouth_width
        uc, hw = (g.mouth_u[0] + g.mouth_u[1]) / 2, max(1.0, (g.mouth_u[1] - g.mouth_u[0]) / 2)
        x = np.clip((u - uc) / hw, -1.0, 1.0)
        depth = np.clip((v - top) / np.maximum(gap, 1e-3), 0.0, 1.0)  # 0 at the upper lip, 1 at the lower
        near = np.clip(np.minimum(v - top, bot - v) / np.maximum(0.3 * gap, 1.0), 0.0, 1.0)
        lip, teeth = look.lip.astype(f32), look.teeth.astype(f32)
        cavity = np.array([0.25, 0.6, 0.6], f32) * lip
        rim = np.array([0.45, 0.75, 0.75], f32) * lip
        col = rim + (cavity - rim) * smoothstep(near)[..., None]
        # Tongue: an arch rising from the floor of the mouth; its tip comes up for /t d n l θ/.
        rise = 0.55 + 0.35 * float(np.clip(row[_C["tongue"]], 0, 1))
        surface = 1.0 - rise * np.sqrt(np.clip(1.0 - x * x, 0.0, 1.0))
        tongue = np.clip((depth - surface) * gap + 0.5, 0.0, 1.0) * smoothstep(gap / (0.08 * mw))
        shade = 0.7 + 0.3 * np.clip((depth - surface) / np.maximum(1.0 - surface, 0.05), 0.0, 1.0) ** 0.5
        tongue_col = np.array([0.9, 1.15, 1.1], f32) * lip
        tongue_col = tongue_col * np.stack(
            [shade * (0.6 + 0.4 * np.sqrt(q)), np.ones_like(x), np.ones_like(x)], axis=-1
        )
        col = col + (tongue_col - col) * tongue[..., None]
        # Teeth: the portrait's own teeth colour, separations between them, darker towards the corners.
        phase = np.arcsin(np.clip(x, -0.999, 0.999)) * (7.0 / np.pi)
        gaps_ = np.exp(-(((phase - np.round(phase)) / 0.06) ** 2))
        teeth_shade = (0.6 + 0.4 * np.sqrt(q)) * (1.0 - 0.14 * gaps_)
        low_h = np.minimum(0.25 * gap, 0.04 * mw) * np.sqrt(q)
        lower = np.clip(low_h - (bot - v) + 0.5, 0.0, 1.0) * smoothstep(q / 0.3)
        lower_col = teeth * np.stack([0.88 * teeth_shade, np.ones_like(x), np.ones_like(x)], axis=-1)
        col = col + (lower_col - col) * lower[..., None]
        if not self._teeth_visible:
            hidden = 1.0 - 0.75 * float(np.clip(row[_C["round"]], 0, 1))  # rounded lips cover the teeth
            up_h = np.minimum.reduce([0.45 * gap + lift * q, 0.08 * mw * np.sqrt(q) + lift * q, gap]) * hidden
            upper = np.clip(up_h - (v - top) + 0.5, 0.0, 1.0) * smoothstep(q / 0.25)
            rel = (v - top) / np.maximum(up_h, 1.0)
            under_lip = (0.72 + 0.28 * smoothstep(rel / 0.4)) * (1.0 - 0.1 * smoothstep((rel - 0.75) / 0.25))
            upper_col = teeth * np.stack([teeth_shade * under_lip, np.ones_like(x), np.ones_like(x)], axis=-1)
            col = col + (upper_col - col) * upper[..., None]
        # The portrait's side light across the mouth, its blur and its grain.
        col[..., 0] *= np.clip(1.0 + 0.5 * look.light * x, 0.3, 1.7)
        col[..., 0] += self._grain[box] * (alpha > 0)
        rgb = from_ycc(col)
        a = alpha
        if look.blur > 0.6:
            sigma = float(np.sqrt(look.blur**2 - 0.5**2))
            cv2 = self._cv2
            rgb = cv2.GaussianBlur((rgb * a[..., None]).astype(np.float32), (0, 0), sigma)
            a = cv2.GaussianBlur(a.astype(np.float32), (0, 0), sigma)
            rgb = rgb / np.maximum(a, 1e-3)[..., None]
        region = patch[self._mslice][box]
        a3 = a[..., None]
        region[...] = np.clip(region * (1.0 - a3) + rgb * a3 + 0.5, 0, 255).astype(np.uint8)
