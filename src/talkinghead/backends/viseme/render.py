"""Frame rendering: combine the fields, remap the head ROI, paint the inside of the mouth.

The inside of the mouth is the only thing painted; every colour of it comes from the portrait's
:class:`~.appearance.Appearance` (its lips, teeth, eyes and skin), lit across by the portrait's
own side light, blurred like the face and given its grain. Eyelids are not painted: the blink
fields stretch the upper lid's own skin over the eye.
"""

from __future__ import annotations

import bisect
import copy

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
    x = min(max(float(value), 0.0), 1.0)
    if x <= 0.0:
        return []
    grid = (0.0,) + tuple(levels)
    k = min(len(levels) - 1, bisect.bisect_right(grid, x) - 1)
    a = (x - grid[k]) / (grid[k + 1] - grid[k])
    out = [(k, a)]
    if k > 0:
        out.append((k - 1, 1.0 - a))
    return out


try:  # the clip ufunc itself: np.clip's Python wrapper costs more than the clipping on small arrays
    from numpy._core.umath import clip as _uclip  # numpy >= 2
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.umath import clip as _uclip

_F = np.float32
# float32 scalars: a Python float operand costs numpy a value-based type check on every call
_0, _HALF, _1, _2, _3 = _F(0.0), _F(0.5), _F(1.0), _F(2.0), _F(3.0)


def _clip01(x: np.ndarray) -> np.ndarray:
    """``x`` limited to [0, 1], in place."""
    return _uclip(x, _0, _1, out=x)


def _smooth(x: np.ndarray) -> np.ndarray:
    """:func:`~.fields.smoothstep` of a temporary ``x``, computed in place."""
    x = _clip01(x)
    xx = x * x
    x *= -_2
    x += _3
    x *= xx
    return x


#: Samples of the per-column tables of the mouth interior (over the mouth's width, u).
_TABLE = 8193
#: The columns of the shading table, in the order ``_mouth`` unpacks them.
_SHADES = ("sqrt_lens", "arch", "lens_shade", "teeth_shade", "lower_fade", "upper_fade", "light")


class FrameRenderer:
    """Renders frames of one prepared portrait from rows of the drive.

    Everything that depends only on the portrait (field windows, the mouth's coordinates, the
    per-column shading of teeth and tongue, the interior's colours) is worked out here once, so a
    frame costs a handful of OpenCV calls and a short run of numpy operations on the mouth's box.

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
        self._maps = np.empty(self._shape, np.float32)
        self._index = {f.name: i for i, f in enumerate(bank.fields)}
        self._opening = {self._index[n] for n in OPENING}
        # (data, window) by field index
        self._fields = [
            (f.data, (slice(f.window[0], f.window[1]), slice(f.window[2], f.window[3]))) for f in bank.fields
        ]
        self._jaw = [self._index[f"jaw{k}"] for k in range(len(JAW_LEVELS))]
        self._blink = [self._index[f"blink{k}"] for k in range(len(BLINK_LEVELS))]
        self._direct = [(self._index[n], _C[n]) for n in DIRECT]
        self._press, self._lift = self._index["press"], self._index["lift"]
        mx0, my0, mx1, my1 = bank.mouth_roi
        self._mslice = (slice(my0, my1), slice(mx0, mx1))
        self._teeth_visible = g.teeth_visible
        eye_w = float(np.mean([e.width for e in g.eyes]))
        self._scale = [
            (self._index[name], _C[name], scale)
            for name, scale in (
                ("head_x", g.face_width),
                ("head_y", g.face_width),
                ("head_roll", 1.0),
                ("gaze_x", eye_w),
                ("gaze_y", eye_w),
            )
        ]
        self._grain = np.random.default_rng(seed).standard_normal((my1 - my0, mx1 - mx0)).astype(
            np.float32
        ) * np.float32(look.grain)
        self._setup_mouth()

    def _setup_mouth(self) -> None:
        """Per-portrait constants of the mouth interior: its coordinates, per-column tables and colours."""
        g, look = self.bank.geometry, self.look
        c0, c1 = g.mouth_u
        # Everything that varies with u alone (across the mouth) is a column of a table sampled
        # finely over u (a sample every ~1/50 px at 512²), looked up per pixel with one cv2.remap
        # (nearest sample: several times faster than linear on float tables; clamped at both ends,
        # as np.interp and the clipped x are).
        lo, hi = min(float(g.mid_u[0]), c0) - 2.0, max(float(g.mid_u[-1]), c1) + 2.0
        u = np.linspace(lo, hi, _TABLE)
        step = (hi - lo) / (_TABLE - 1)
        x = np.clip(g.mouth_x(u), -1.0, 1.0)
        q = g.lens(u)  # how far the lips part
        sq = np.sqrt(q)
        phase = np.arcsin(np.clip(x, -0.999, 0.999)) * (7.0 / np.pi)
        separations = np.exp(-(((phase - np.round(phase)) / 0.06) ** 2))  # gaps between the teeth
        lens_shade = 0.6 + 0.4 * sq
        columns = {
            "midline": g.midline(u),
            "lens": q,
            "sqrt_lens": sq,
            "arch": np.sqrt(1.0 - x * x),  # the tongue's arch
            "lens_shade": lens_shade,  # tongue and teeth darken towards the corners
            "teeth_shade": lens_shade * (1.0 - 0.14 * separations),  # and the teeth have separations
            "lower_fade": smoothstep(q / 0.3),  # lower teeth fade out towards the corners
            "upper_fade": smoothstep(q / 0.25),  # upper teeth likewise
            "light": np.clip(1.0 + 0.5 * look.light * x, 0.3, 1.7),  # the portrait's side light
        }
        self._geo_table = np.stack([columns["midline"], columns["lens"]], -1)[None].astype(np.float32)
        self._shade_table = np.stack([columns[k] for k in _SHADES], -1)[None].astype(np.float32)
        # source pixel (x, y) → (table column, v): one cv2.transform of the remap's maps
        o = np.asarray(g.origin, np.float64)
        eu, ev = np.asarray(g.eu, np.float64), np.asarray(g.ev, np.float64)
        self._to_mouth = np.array(
            [[eu[0] / step, eu[1] / step, (-(o @ eu) - lo) / step], [ev[0], ev[1], -(o @ ev)]], np.float64
        )
        mh, mw = self._mslice[0].stop - self._mslice[0].start, self._mslice[1].stop - self._mslice[1].start
        self._zeros = np.zeros((mh, mw), np.float32)
        # Colours: luma per layer; the chroma of each layer is constant over it, so the interior's
        # RGB is one affine map of (luma, base weight, cavity weight, tongue weight): see _mouth.
        lip, teeth = look.lip.astype(np.float64), look.teeth.astype(np.float64)
        cavity = np.array([0.25, 0.6, 0.6]) * lip
        rim = np.array([0.45, 0.75, 0.75]) * lip
        tongue = np.array([0.9, 1.15, 1.1]) * lip
        self._luma = {
            "cavity": float(cavity[0]),
            "rim": float(rim[0]),
            "tongue": float(tongue[0]),
            "teeth": float(teeth[0]),
        }
        # from_ycc is linear: RGB = luma·from_ycc(1, 0, 0) + red chroma·from_ycc(0, 1, 0) + blue…
        unit = from_ycc(np.eye(3))
        to_rgb = unit[1:]  # (red, blue) chroma → RGB
        self._colour = np.stack(
            [
                unit[0],  # luma (1, 1, 1)
                (rim[1:] - teeth[1:]) @ to_rgb,  # weight of the lips' rim and cavity layer
                (cavity[1:] - rim[1:]) @ to_rgb,  # of its cavity part
                (tongue[1:] - teeth[1:]) @ to_rgb,  # of the tongue
                teeth[1:] @ to_rgb,  # the rest is teeth
            ],
            axis=-1,
        )

    def twin(self) -> FrameRenderer:
        """A renderer for another thread: the same per-portrait tables, its own working buffer."""
        other = copy.copy(self)
        other._maps = np.empty_like(self._maps)
        return other

    def weights(self, row: np.ndarray) -> dict[int, float]:
        """Field weights of one frame (by field index) from one row of the drive."""
        w: dict[int, float] = {}
        for k, a in _level_weights(row[_C["jaw"]], JAW_LEVELS):
            w[self._jaw[k]] = w.get(self._jaw[k], 0.0) + a
        lids = float(row[_C["blink"]]) + 0.3 * float(row[_C["droop"]])
        for k, a in _level_weights(lids, BLINK_LEVELS):
            w[self._blink[k]] = w.get(self._blink[k], 0.0) + a
        for i, c in self._direct:
            w[i] = float(row[c])
        # A portrait that shows its teeth has them already: no upper-lip raise to reveal more, and
        # while it talks its lips relax over them (closing half the gap between syllables).
        press = float(row[_C["press"]])
        if self._teeth_visible:
            press = max(press, 0.8 * float(row[_C["talk"]]) * (1.0 - float(smoothstep(row[_C["jaw"]] / 0.45))))
        w[self._press] = press
        w[self._lift] = 0.0 if self._teeth_visible else float(row[_C["lift"]])
        for i, c, scale in self._scale:
            w[i] = float(row[c]) * scale
        return {i: a for i, a in w.items() if abs(a) > 1e-4}

    def _add(self, maps: np.ndarray, i: int, a: float) -> None:
        data, window = self._fields[i]
        target = maps[window]
        self._cv2.scaleAdd(data, a, target, dst=target)  # in place, on a window (a view)

    def render(self, out: np.ndarray, row: np.ndarray) -> None:
        """Draw the frame of drive row ``row`` into ``out`` (a copy of the portrait), in place."""
        cv2 = self._cv2
        w = self.weights(row)
        if not w:
            return
        x0, y0, x1, y1 = self.bank.roi
        maps = self._maps
        np.copyto(maps, self._grid)
        opening = []
        for i, a in w.items():
            if i in self._opening:
                opening.append((i, a))
            else:
                self._add(maps, i, a)
        if opening:
            # where the mouth's own motion (smile, rounding, head…) puts it, before it opens
            mouth = cv2.transform(maps[self._mslice], self._to_mouth)
            for i, a in opening:
                self._add(maps, i, a)
        patch = out[y0:y1, x0:x1]
        cv2.remap(self.image, maps, None, cv2.INTER_LINEAR, dst=patch, borderMode=cv2.BORDER_REPLICATE)
        if opening:
            self._mouth(patch, mouth, row)

    def _mouth(self, patch: np.ndarray, mouth: np.ndarray, row: np.ndarray) -> None:
        """Paint the mouth's interior (cavity, tongue, lower and upper teeth) in the gap the fields opened.

        ``mouth`` holds, per pixel of the mouth ROI, its (table column, v) before the mouth opened.
        The arrays are small, so each numpy call costs more in overhead than in arithmetic: the
        code keeps them contiguous, passes float32 scalars and works in place where it can.
        """
        cv2 = self._cv2
        g, look, bank = self.bank.geometry, self.look, self.bank
        amp = min(max(float(row[_C["jaw"]]), 0.0), 1.0) * bank.jaw_px
        lift = 0.0 if self._teeth_visible else float(row[_C["lift"]]) * g.lift_px
        if amp + lift < 0.3:
            return
        reach_up = UPPER_LIP_RATIO * amp + lift  # how far the upper lip rises where the lips part fully
        span = reach_up + amp  # the gap where they part fully
        if span <= 0.3:
            return
        column, d = cv2.split(mouth)
        midline, q = cv2.split(
            cv2.remap(self._geo_table, column, self._zeros, cv2.INTER_NEAREST, borderMode=cv2.BORDER_REPLICATE)
        )
        d -= midline  # below the line where the lips part
        # The gap: below the upper lip's edge (d > -reach_up·q) and above the lower lip's (d < amp·q),
        # where the lips part by more than 0.3 px (q > 0.3 / span).
        inside = (d > q * _F(-reach_up) - _HALF) & (d < q * _F(amp) + _HALF) & (q > _F(0.3 / span))
        bx, by, bw, bh = cv2.boundingRect(inside.view(np.uint8))
        if bw == 0:
            return
        # Work on the gap's bounding box only (with room for the blur), on contiguous copies.
        pad = int(np.ceil(2.5 * max(look.blur, 0.5))) + 1
        box = (
            slice(max(0, by - pad), min(inside.shape[0], by + bh + pad)),
            slice(max(0, bx - pad), min(inside.shape[1], bx + bw + pad)),
        )
        d, q = np.ascontiguousarray(d[box]), np.ascontiguousarray(q[box])
        below_top = q * _F(reach_up)
        below_top += d  # distance below the upper lip's edge
        above_bot = q * _F(amp)
        above_bot -= d  # distance above the lower lip's edge
        gap = q * _F(span)
        shades = cv2.remap(
            self._shade_table, column[box], self._zeros[box], cv2.INTER_NEAREST, borderMode=cv2.BORDER_REPLICATE
        )
        sq, arch, lens_shade, teeth_shade, lower_fade, upper_fade, light = cv2.split(shades)
        edge = np.minimum(below_top, above_bot)
        alpha = edge + _HALF
        _clip01(alpha)
        alpha *= gap > _F(0.3)
        depth = np.maximum(gap, _F(1e-3))
        np.divide(below_top, depth, out=depth)
        _clip01(depth)  # 0 at the upper lip, 1 at the lower
        near = gap * _F(0.3)
        np.maximum(near, _1, out=near)
        np.divide(edge, near, out=near)
        _smooth(near)  # 0 at the lips, 1 deep in the cavity
        L = self._luma
        luma = near * _F(L["cavity"] - L["rim"])
        luma += _F(L["rim"])
        # Tongue: an arch rising from the floor of the mouth; its tip comes up for /t d n l θ/.
        rise = _F(0.55 + 0.35 * min(max(float(row[_C["tongue"]]), 0.0), 1.0))
        arch *= rise
        over = depth + arch
        over -= _1  # how far below the tongue's surface
        tongue = over * gap
        tongue += _HALF
        _clip01(tongue)
        tongue *= _smooth(gap * _F(1.0 / (0.08 * g.mouth_width)))
        np.maximum(arch, _F(0.05), out=arch)
        shade = np.divide(over, arch, out=over)
        np.sqrt(_clip01(shade), out=shade)
        shade *= _F(0.3)
        shade += _F(0.7)
        shade *= lens_shade
        shade *= _F(L["tongue"])
        shade -= luma
        shade *= tongue
        luma += shade
        # Teeth: the portrait's own teeth colour, separations between them, darker towards the corners.
        mw = g.mouth_width
        lower = np.minimum(gap * _F(0.25), _F(0.04 * mw))
        lower *= sq
        lower -= above_bot
        lower += _HALF
        _clip01(lower)
        lower *= lower_fade
        colour = teeth_shade * _F(0.88 * L["teeth"])
        colour -= luma
        colour *= lower
        luma += colour
        kept = _1 - lower  # how much of what lies behind the teeth shows
        if not self._teeth_visible:
            hidden = _F(1.0 - 0.75 * min(max(float(row[_C["round"]]), 0.0), 1.0))  # rounded lips cover the teeth
            lift_q = q * _F(lift)
            up_h = gap * _F(0.45)
            up_h += lift_q
            reach = sq * _F(0.08 * mw)
            reach += lift_q
            np.minimum(up_h, reach, out=up_h)
            np.minimum(up_h, gap, out=up_h)
            up_h *= hidden
            upper = up_h - below_top
            upper += _HALF
            _clip01(upper)
            upper *= upper_fade
            rel = np.maximum(up_h, _1, out=up_h)
            np.divide(below_top, rel, out=rel)
            under_lip = _smooth(rel * _F(1.0 / 0.4))
            under_lip *= _F(0.28)
            under_lip += _F(0.72)
            rel -= _F(0.75)
            rel *= _F(4.0)
            fade = _smooth(rel)
            fade *= _F(-0.1)
            fade += _1
            under_lip *= fade
            under_lip *= teeth_shade
            under_lip *= _F(L["teeth"])
            under_lip -= luma
            under_lip *= upper
            luma += under_lip
            upper -= _1
            kept *= upper
            np.negative(kept, out=kept)
        # The portrait's side light across the mouth, and its grain (where alpha is 0 it is
        # multiplied away below).
        luma *= light
        luma += self._grain[box]
        # Chroma: each layer's is constant, so the result is an affine map of how much of each
        # layer shows: the lips' rim/cavity layer (with its cavity part) and the tongue; the rest
        # is teeth.
        tongue *= kept
        base = kept - tongue
        near *= base
        rgb = cv2.transform(cv2.merge([luma, base, near, tongue]), self._colour)
        # Blend premultiplied, blurred like the face.
        rgb *= alpha[..., None]
        if look.blur > 0.6:
            sigma = float(np.sqrt(look.blur**2 - 0.5**2))
            rgb = cv2.GaussianBlur(rgb, (0, 0), sigma)
            alpha = cv2.GaussianBlur(alpha, (0, 0), sigma)
        region = patch[self._mslice][box]
        np.subtract(_1, alpha, out=alpha)
        behind = region * alpha[..., None]
        cv2.add(rgb, behind, dst=region, dtype=cv2.CV_8U)  # rounds and saturates, in place
