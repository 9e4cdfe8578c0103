"""Playing a bank: per-frame parameters -> the nearest bank frames -> optical-flow interpolation.

For each frame, the nearest bank state ``a`` is found, then among its ``neighbours`` nearest
states the ``b`` whose segment ``a -> b`` passes closest to the frame's parameters; the frame's
position along that segment is ``t`` in [0, 1]. The output is frame ``a`` and frame ``b`` warped
towards each other along their optical flow (OpenCV's DIS flow: no weights) and blended by ``t``,
RIFE-style. Flows are computed once per pair of states and kept (a small LRU, shared by every
clip of the portrait); everything else is per call.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

import numpy as np

__all__ = ["BankPlayer", "INTERPOLATIONS"]

INTERPOLATIONS = ("flow", "blend", "nearest")
#: ``t`` closer than this to 0 or 1 shows the bank frame itself.
SNAP = 0.02


class BankPlayer:
    """Turns (T, D) parameters into (T, h, w, 3) region frames from a bank.

    Args:
        states: (K, D) parameters of the bank frames.
        mean, scale: (D,) normalisation: distances are measured on ``(p - mean) / scale``.
        frames: (K, h, w, 3) uint8 bank frames.
        interpolation: ``flow`` (warp both frames along their optical flow, then blend),
            ``blend`` (cross-fade only) or ``nearest`` (the nearest frame; no interpolation).
        neighbours: how many near states are tried as the second frame of a pair.
        flow_size: flows are computed on frames scaled so their long side is at most this.
        flow_preset: DIS preset, ``ultrafast``, ``fast`` or ``medium`` (slower, finer).
        flow_cache: how many pairs of flows are kept.
    """

    def __init__(self, states: np.ndarray, mean: np.ndarray, scale: np.ndarray, frames: np.ndarray, *,
                 interpolation: str = "flow", neighbours: int = 6, flow_size: int = 256, flow_preset: str = "fast",
                 flow_cache: int = 128) -> None:
        if interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {INTERPOLATIONS}, got {interpolation!r}")
        self.mean = np.asarray(mean, np.float32)
        self.scale = np.asarray(scale, np.float32)
        self.z = (np.asarray(states, np.float32) - self.mean) / self.scale
        self.frames = frames
        self.interpolation = interpolation
        self.neighbours = max(1, min(int(neighbours), len(self.z) - 1))
        self.flow_size = int(flow_size)
        self.flow_preset = flow_preset
        self._flows: OrderedDict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._flow_cache = int(flow_cache)
        self._lock = threading.Lock()
        h, w = frames.shape[1:3]
        self._grid = np.stack(np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32)), -1)
        # each state's nearest other states (the candidates for the second frame of a pair)
        d = ((self.z[:, None] - self.z[None]) ** 2).sum(-1)
        np.fill_diagonal(d, np.inf)
        self._near = np.argsort(d, 1)[:, : self.neighbours] if len(self.z) > 1 else np.zeros((1, 0), int)

    @property
    def k(self) -> int:
        return len(self.z)

    # -- matching ---------------------------------------------------------------------------------
    def match(self, params: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For (T, D) parameters: nearest state ``a``, partner ``b`` and position ``t`` in [0, 1] per frame."""
        z = (np.asarray(params, np.float32).reshape(len(params), -1) - self.mean) / self.scale
        d = (z * z).sum(1)[:, None] - 2 * z @ self.z.T + (self.z * self.z).sum(1)[None]
        a = d.argmin(1)
        if self.k == 1 or self.interpolation == "nearest":
            return a, a.copy(), np.zeros(len(a), np.float32)
        cand = self._near[a]  # (T, n)
        za = self.z[a][:, None]  # (T, 1, D)
        seg = self.z[cand] - za  # (T, n, D)
        rel = (z[:, None] - za)  # (T, 1, D)
        t = np.clip((rel * seg).sum(-1) / np.maximum((seg * seg).sum(-1), 1e-12), 0.0, 1.0)
        resid = ((rel - t[..., None] * seg) ** 2).sum(-1)
        j = resid.argmin(1)
        rows = np.arange(len(a))
        return a, cand[rows, j], t[rows, j].astype(np.float32)

    # -- frames -------------------------------------------------------------------------------------
    def render(self, params: np.ndarray) -> np.ndarray:
        """(T, h, w, 3) uint8 region frames for (T, D) parameters."""
        a, b, t = self.match(params)
        out = np.empty((len(a),) + self.frames.shape[1:], np.uint8)
        for i in range(len(a)):
            out[i] = self.frame(int(a[i]), int(b[i]), float(t[i]))
        return out

    def frame(self, a: int, b: int, t: float) -> np.ndarray:
        """Bank frame ``a`` moved a share ``t`` of the way towards bank frame ``b``."""
        if a == b or t <= SNAP:
            return self.frames[a]
        if t >= 1 - SNAP:
            return self.frames[b]
        fa, fb = self.frames[a].astype(np.float32), self.frames[b].astype(np.float32)
        if self.interpolation == "blend":
            return _u8(fa + t * (fb - fa))
        import cv2

        f_ab, f_ba = self._pair_flows(a, b)
        # flows from the intermediate frame back to a and b (Super SloMo's linear approximation)
        f_ta = -(1 - t) * t * f_ab + t * t * f_ba
        f_tb = (1 - t) * (1 - t) * f_ab - t * (1 - t) * f_ba
        wa = cv2.remap(self.frames[a], self._grid + f_ta, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        wb = cv2.remap(self.frames[b], self._grid + f_tb, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        return _u8(wa.astype(np.float32) * (1 - t) + wb.astype(np.float32) * t)

    def _pair_flows(self, a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
        """(flow a->b, flow b->a) at frame resolution, computed once per unordered pair."""
        key = (min(a, b), max(a, b))
        with self._lock:
            hit = self._flows.get(key)
            if hit is not None:
                self._flows.move_to_end(key)
        if hit is None:
            lo, hi = key
            hit = (dis_flow(self.frames[lo], self.frames[hi], self.flow_size, self.flow_preset),
                   dis_flow(self.frames[hi], self.frames[lo], self.flow_size, self.flow_preset))
            with self._lock:
                self._flows[key] = hit
                while len(self._flows) > self._flow_cache:
                    self._flows.popitem(last=False)
        return hit if a < b else (hit[1], hit[0])

    def warm(self, pairs: Any = None) -> None:
        """Compute the flows of ``pairs`` (default: each state with its nearest neighbour) ahead of time."""
        if self.interpolation != "flow" or self.k < 2:
            return
        for a, b in pairs if pairs is not None else ((i, int(self._near[i, 0])) for i in range(self.k)):
            self._pair_flows(int(a), int(b))


def dis_flow(src: np.ndarray, dst: np.ndarray, max_size: int = 256, preset: str = "fast") -> np.ndarray:
    """Dense flow ``f`` with ``src(x) ≈ dst(x + f(x))`` (OpenCV's DIS), (h, w, 2) float32.

    Frames larger than ``max_size`` on their long side are scaled down for the flow; the flow is
    scaled back up.
    """
    import cv2

    h, w = src.shape[:2]
    s = min(1.0, max_size / max(h, w))
    ga, gb = cv2.cvtColor(src, cv2.COLOR_RGB2GRAY), cv2.cvtColor(dst, cv2.COLOR_RGB2GRAY)
    if s < 1.0:
        size = (max(8, round(w * s)), max(8, round(h * s)))
        ga, gb = cv2.resize(ga, size, interpolation=cv2.INTER_AREA), cv2.resize(gb, size, interpolation=cv2.INTER_AREA)
    dis = cv2.DISOpticalFlow_create(getattr(cv2, f"DISOPTICAL_FLOW_PRESET_{preset.upper()}"))
    flow = dis.calc(ga, gb, None)
    if s < 1.0:
        fx, fy = w / ga.shape[1], h / ga.shape[0]
        flow = cv2.resize(flow, (w, h), interpolation=cv2.INTER_LINEAR) * np.array([fx, fy], np.float32)
    return flow.astype(np.float32)


def _u8(x: np.ndarray) -> np.ndarray:
    return np.clip(x + 0.5, 0, 255).astype(np.uint8)
