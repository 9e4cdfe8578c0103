"""Choosing the bank's K driving states: k-means over standardised parameters (numpy only)."""

from __future__ import annotations

import numpy as np

__all__ = ["standardize", "kmeans"]

#: Dimensions whose spread is below this share of the largest spread are scaled as if they had it
#: (a dimension that barely moves must not dominate distances once divided by its tiny spread).
MIN_SCALE_SHARE = 1e-3


def standardize(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension mean and scale (standard deviation, floored) of (N, D) parameters."""
    x = np.asarray(x, np.float64)
    mean = x.mean(0)
    std = x.std(0)
    floor = max(float(std.max()) * MIN_SCALE_SHARE, 1e-12)
    return mean.astype(np.float32), np.maximum(std, floor).astype(np.float32)


def kmeans(x: np.ndarray, k: int, *, seed: int = 0, iters: int = 60, first: np.ndarray | None = None
           ) -> tuple[np.ndarray, np.ndarray]:
    """k-means++ then Lloyd iterations on (N, D) points; returns (k, D) centres and (N,) labels.

    Args:
        x: the points (already scaled as distances should be measured).
        k: number of centres; fewer distinct points than ``k`` gives one centre per distinct point.
        seed: seeds the k-means++ draws (the same seed gives the same centres).
        iters: most Lloyd iterations (stops earlier when the labels no longer change).
        first: optional point used as the first centre instead of a random draw.
    """
    x = np.asarray(x, np.float64)
    uniq = np.unique(x, axis=0)
    if len(uniq) <= k:
        d = ((x[:, None, :] - uniq[None]) ** 2).sum(-1)
        return uniq.astype(np.float32), d.argmin(1)
    rng = np.random.default_rng(seed)
    centres = np.empty((k, x.shape[1]))
    centres[0] = np.asarray(first, np.float64) if first is not None else x[rng.integers(len(x))]
    d2 = ((x - centres[0]) ** 2).sum(1)
    for i in range(1, k):
        p = d2 / d2.sum() if d2.sum() > 0 else np.full(len(x), 1 / len(x))
        centres[i] = x[rng.choice(len(x), p=p)]
        d2 = np.minimum(d2, ((x - centres[i]) ** 2).sum(1))
    labels = np.full(len(x), -1)
    for _ in range(iters):
        d = (x * x).sum(1)[:, None] - 2 * x @ centres.T + (centres * centres).sum(1)[None]
        new = d.argmin(1)
        if np.array_equal(new, labels):
            break
        labels = new
        for i in range(k):
            members = x[labels == i]
            if len(members):
                centres[i] = members.mean(0)
            else:  # an empty cluster takes the point farthest from its centre
                far = int(d[np.arange(len(x)), labels].argmax())
                centres[i] = x[far]
                labels[far] = i
    return centres.astype(np.float32), labels
