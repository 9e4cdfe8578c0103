"""Putting the rendered face crop back into the full portrait (full / extfull modes).

``seamless``: upstream's per-frame ``cv2.seamlessClone(face, full, all-255 mask, centre, NORMAL_CLONE)``
(a Poisson solve per frame). ``fast``: a feathered alpha blend whose mask is computed once per
portrait, applied only inside the face box: one resize and one fused multiply-add per frame.
"""

from __future__ import annotations

import numpy as np


def feather_mask(h: int, w: int, feather: float = 0.08) -> np.ndarray:
    """(h, w, 1) float32 alpha: 1 inside, ramping to 0 over ``feather`` of the box at the borders."""
    fy = max(1, int(round(h * feather)))
    fx = max(1, int(round(w * feather)))
    ry = np.minimum(np.arange(h) + 1, np.arange(h)[::-1] + 1) / fy
    rx = np.minimum(np.arange(w) + 1, np.arange(w)[::-1] + 1) / fx
    m = np.minimum(np.clip(ry, 0, 1)[:, None], np.clip(rx, 0, 1)[None, :])
    return (m * m * (3 - 2 * m)).astype(np.float32)[..., None]  # smoothstep


class Paster:
    """Pastes (N, h, w, 3) uint8 face frames into a full RGB image at box (x1, y1, x2, y2)."""

    def __init__(self, full: np.ndarray, box: tuple[int, int, int, int], mode: str = "fast") -> None:
        self.full = np.ascontiguousarray(full)
        x1, y1, x2, y2 = box
        H, W = full.shape[:2]
        self.box = (max(0, x1), max(0, y1), min(W, x2), min(H, y2))
        self.orig_box = box
        self.mode = mode
        bw, bh = x2 - x1, y2 - y1
        self.alpha = feather_mask(bh, bw)
        self.bg = full.astype(np.float32)

    def paste(self, frames: np.ndarray) -> np.ndarray:
        import cv2

        x1, y1, x2, y2 = self.orig_box
        bw, bh = x2 - x1, y2 - y1
        out = np.empty((len(frames),) + self.full.shape, np.uint8)
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
            cx1, cy1, cx2, cy2 = self.box
            sub = face[cy1 - y1:cy2 - y1, cx1 - x1:cx2 - x1].astype(np.float32)
            a = self.alpha[cy1 - y1:cy2 - y1, cx1 - x1:cx2 - x1]
            bg = self.bg[cy1:cy2, cx1:cx2]
            out[i, cy1:cy2, cx1:cx2] = np.clip(bg + a * (sub - bg) + 0.5, 0, 255).astype(np.uint8)
        return out
