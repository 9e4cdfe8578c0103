"""Frame rendering: combine the fields, remap the head ROI, paint the mouth interior."""

from __future__ import annotations

import numpy as np

from .fields import JAW_LEVELS, UPPER_LIP_RATIO, FieldBank, smoothstep

__all__ = ["FrameRenderer"]

CAVITY = np.array([52.0, 16.0, 20.0])  # deep mouth, RGB
CAVITY_EDGE = np.array([96.0, 38.0, 40.0])  # near the lips
TONGUE = np.array([150.0, 62.0, 66.0])
TEETH = np.array([226.0, 220.0, 208.0])
#: Share of the lid closing done by warping (the rest is painted lid skin).
BLINK_WARP = 0.35


class FrameRenderer:
    """Renders frames of one prepared portrait from per-frame weights.

    Args:
        image: the portrait, RGB uint8 (H, W, 3).
        bank: its deformation fields.
    """

    def __init__(self, image: np.ndarray, bank: FieldBank) -> None:
        import cv2

        self._cv2 = cv2
        self.image = image
        self.bank = bank
        g = bank.geometry
        x0, y0, x1, y1 = bank.roi
        self._fields = bank.fields.reshape(len(bank.names), -1)
        self._grid = bank.grid.reshape(-1)
        self._shape = (y1 - y0, x1 - x0, 2)
        mx0, my0, mx1, my1 = bank.mouth_roi
        self._mslice = (slice(my0, my1), slice(mx0, mx1))
        rel = bank.grid[my0:my1, mx0:mx1].astype(np.float64) - g.origin
        self._mu, self._mv = rel @ g.eu, rel @ g.ev
        # Closed-lipped portraits get painted upper teeth; open smiles already show their own.
        self._paint_teeth = g.rest_gap < 0.06 * g.mouth_width
        self._jaw_idx = [bank.index(f"jaw{k}") for k in range(len(JAW_LEVELS))]
        self._idx = {n: bank.index(n) for n in ("spread", "pucker", "blink", "head_x", "head_y", "head_roll")}
        self._eyes = [self._eye_setup(e) for e in g.eyes]

    def _eye_setup(self, eye):
        """Per eye: its ROI in the head ROI, pixel (u, v), lid curves and the lid skin colour."""
        g, bank = self.bank.geometry, self.bank
        uu, vu, ul, vl = eye
        c0, c1 = max(uu[0], ul[0]), min(uu[-1], ul[-1])
        us = np.linspace(c0, c1, 16)
        h = float(max(1.0, np.max(np.interp(us, ul, vl) - np.interp(us, uu, vu))))
        x0, y0, x1, y1 = bank.roi
        lo_v, hi_v = vu.min() - 6, vl.max() + 3
        corners = np.array([[c0 - 4, lo_v], [c1 + 4, lo_v], [c0 - 4, hi_v], [c1 + 4, hi_v]])
        pts = g.origin + corners[:, :1] * g.eu + corners[:, 1:] * g.ev
        ex0, ey0 = int(max(x0, np.floor(pts[:, 0].min()) - 2)), int(max(y0, np.floor(pts[:, 1].min()) - 2))
        ex1, ey1 = int(min(x1, np.ceil(pts[:, 0].max()) + 2)), int(min(y1, np.ceil(pts[:, 1].max()) + 2))
        sl = (slice(ey0 - y0, ey1 - y0), slice(ex0 - x0, ex1 - x0))
        rel = bank.grid[sl].astype(np.float64) - g.origin
        # Lid skin: the skin just below the eye, sampled from the portrait.
        mid_u = (c0 + c1) / 2
        probe = np.array(
            [[mid_u + du * (c1 - c0) / 4, np.interp(mid_u, ul, vl) + dv * h] for du in (-1, 0, 1) for dv in (0.9, 1.3)]
            + [[mid_u + du * (c1 - c0) / 4, np.interp(mid_u, uu, vu) - dv * h] for du in (-1, 0, 1) for dv in (0.8, 1)]
        )
        pp = g.origin + probe[:, :1] * g.eu + probe[:, 1:] * g.ev
        hh, ww = self.image.shape[:2]
        xs = np.clip(np.round(pp[:, 0]).astype(int), 0, ww - 1)
        ys = np.clip(np.round(pp[:, 1]).astype(int), 0, hh - 1)
        skin = np.median(self.image[ys, xs].astype(np.float64), axis=0) * 0.88
        # Lid texture: the skin under the eye, mirrored about the lower lid, toned to the lid colour.
        mu, mv = rel @ g.eu, rel @ g.ev
        bot = np.interp(mu, ul, vl)
        mirror = 2.0 * bot - np.minimum(mv, bot) + 2.0
        src = g.origin + mu[..., None] * g.eu + mirror[..., None] * g.ev
        cv2 = self._cv2
        tex = cv2.remap(self.image, src.astype(np.float32), None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        tex = tex.astype(np.float64)
        tex = cv2.GaussianBlur(tex, (0, 0), 0.6) * (skin / np.maximum(np.median(tex.reshape(-1, 3), axis=0), 1.0))
        return sl, mu, mv, (uu, vu, ul, vl, c0, c1), tex

    def weights(self, jaw: float, spread: float, pucker: float, blink: float, head: np.ndarray) -> np.ndarray:
        """The field weights of one frame (jaw blends the two precomputed levels around it)."""
        w = np.zeros(len(self.bank.names), np.float32)
        levels = (0.0,) + JAW_LEVELS
        j = float(np.clip(jaw, 0.0, 1.0))
        k = min(len(JAW_LEVELS) - 1, int(np.searchsorted(levels, j, side="right")) - 1)
        a = (j - levels[k]) / (levels[k + 1] - levels[k])
        if k > 0:
            w[self._jaw_idx[k - 1]] = 1.0 - a
        w[self._jaw_idx[k]] += a
        w[self._idx["spread"]] = spread
        w[self._idx["pucker"]] = pucker
        w[self._idx["blink"]] = blink * BLINK_WARP
        fw = self.bank.geometry.face_width
        w[self._idx["head_x"]] = head[0] * fw
        w[self._idx["head_y"]] = head[1] * fw
        w[self._idx["head_roll"]] = head[2]
        return w

    def render(self, out: np.ndarray, w: np.ndarray, jaw: float) -> None:
        """Draw one frame into ``out`` (a copy of the portrait), in place."""
        cv2 = self._cv2
        nz = np.flatnonzero(np.abs(w) > 1e-4)
        x0, y0, x1, y1 = self.bank.roi
        if nz.size == 0:
            return
        disp = w[nz] @ self._fields[nz]
        maps = (self._grid + disp).reshape(self._shape)
        patch = cv2.remap(self.image, maps, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        if jaw > 1e-3:
            jaw_w = np.zeros_like(w)
            jaw_w[self._jaw_idx] = w[self._jaw_idx]
            rest = (disp - jaw_w[nz] @ self._fields[nz]).reshape(self._shape)
            self._mouth(patch, rest[self._mslice], jaw)
        blink = float(w[self._idx["blink"]]) / BLINK_WARP
        if blink > 0.03:
            full = disp.reshape(self._shape)
            for eye in self._eyes:
                self._eyelid(patch, full[eye[0]], eye, blink)
        out[y0:y1, x0:x1] = patch

    def _eyelid(self, patch: np.ndarray, disp: np.ndarray, eye, blink: float) -> None:
        """Paint the upper lid coming down over the eye, with a dark lash line at its edge."""
        g = self.bank.geometry
        sl, mu, mv, (uu, vu, ul, vl, c0, c1), skin = eye  # skin: the lid texture
        u = mu + disp[..., 0] * g.eu[0] + disp[..., 1] * g.eu[1]
        v = mv + disp[..., 0] * g.ev[0] + disp[..., 1] * g.ev[1]
        top, bot = np.interp(u, uu, vu), np.interp(u, ul, vl)
        span = max(1.0, (c1 - c0) / 2)
        inside = smoothstep((1.12 - np.abs(u - (c0 + c1) / 2) / span) / 0.2)
        edge = top + blink * 1.05 * (bot - top)
        # The lid covers the eye from above its lash line (3-5 px) down to its moving edge.
        lid = np.clip(edge - v + 0.5, 0.0, 1.0) * np.clip((v - top + 5.5) / 2.5, 0.0, 1.0) * inside
        if not lid.any():
            return
        col = skin * (1.0 - 0.12 * np.clip((v - top) / np.maximum(bot - top, 1.0), 0.0, 1.0))[..., None]
        lash = np.clip(1.0 - np.abs(v - edge + 0.6), 0.0, 1.0) * inside * smoothstep((blink - 0.4) / 0.5)
        col = col * (1.0 - 0.45 * lash[..., None])
        a = np.maximum(lid, lash)[..., None] * min(1.0, blink * 1.5)
        region = patch[sl]
        region[...] = np.clip(region * (1.0 - a) + col * a + 0.5, 0, 255).astype(np.uint8)

    def _mouth(self, patch: np.ndarray, rest: np.ndarray, jaw: float) -> None:
        """Paint the dark mouth cavity (and teeth) in the gap the jaw field opened."""
        g = self.bank.geometry
        u = self._mu + rest[..., 0] * g.eu[0] + rest[..., 1] * g.eu[1]
        v = self._mv + rest[..., 0] * g.ev[0] + rest[..., 1] * g.ev[1]
        amp = jaw * self.bank.jaw_px
        q = g.lens(u)
        m = g.midline(u)
        top, bot = m - UPPER_LIP_RATIO * amp * q, m + amp * q
        gap = bot - top
        alpha = np.clip(np.minimum(v - top, bot - v) + 0.5, 0.0, 1.0)
        alpha = np.where(gap > 0.3, alpha, 0.0)
        if not alpha.any():
            return
        depth = np.clip((v - top) / np.maximum(gap, 1e-3), 0.0, 1.0)  # 0 at the upper lip, 1 lower
        edge = np.clip(np.minimum(v - top, bot - v) / np.maximum(0.35 * gap, 1.0), 0.0, 1.0)
        col = CAVITY_EDGE + (CAVITY - CAVITY_EDGE) * smoothstep(edge)[..., None]
        tongue = smoothstep((depth - 0.6) / 0.4) * q**2 * np.clip(amp * q / (0.15 * g.mouth_width), 0, 1) * 0.55
        col = col + (TONGUE - col) * tongue[..., None]
        if self._paint_teeth:
            tooth_h = np.minimum(0.45 * gap, 0.09 * g.mouth_width) * np.sqrt(q)
            teeth = np.clip(tooth_h - (v - top) + 0.5, 0.0, 1.0) * smoothstep(q / 0.25)
            shade = 0.78 + 0.22 * np.clip((v - top) / np.maximum(tooth_h, 1e-3), 0, 1)
            col = col + (TEETH * shade[..., None] - col) * teeth[..., None]
        region = patch[self._mslice]
        a = alpha[..., None]
        region[...] = np.clip(region * (1.0 - a) + col * a + 0.5, 0, 255).astype(np.uint8)
