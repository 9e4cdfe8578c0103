"""Resampling audio that arrives in pieces (a microphone, a TTS that streams PCM).

:class:`StreamResampler` gives, piece by piece, exactly the samples that
``scipy.signal.resample_poly`` gives for the whole signal at once (same Kaiser-windowed FIR, zero
padding at the ends), so cutting the input into pieces changes nothing.
"""

from __future__ import annotations

from math import gcd

import numpy as np

from ..errors import AudioError

__all__ = ["StreamResampler"]


class StreamResampler:
    """Polyphase resampler with state, for audio pushed in pieces of any length.

    Args:
        in_rate: rate of the pushed samples (Hz).
        out_rate: rate of the returned samples (Hz).

    ``push`` returns every output sample whose filter support is fully known (a delay of about ten
    output samples); ``flush`` ends the signal (zeros after it) and returns the rest, so the total
    is ``ceil(n_in * out_rate / in_rate)`` samples, like ``resample_poly``.
    """

    def __init__(self, in_rate: int, out_rate: int) -> None:
        if int(in_rate) <= 0 or int(out_rate) <= 0:
            raise AudioError(f"sample rates must be positive, got {in_rate} -> {out_rate}")
        self.in_rate, self.out_rate = int(in_rate), int(out_rate)
        g = gcd(self.in_rate, self.out_rate)
        self.up, self.down = self.out_rate // g, self.in_rate // g
        self._h: np.ndarray | None = None
        if self.up != 1 or self.down != 1:
            from scipy.signal import firwin

            max_rate = max(self.up, self.down)
            self._half = 10 * max_rate  # as resample_poly
            h = firwin(2 * self._half + 1, 1.0 / max_rate, window=("kaiser", 5.0))
            self._h = (h * self.up).astype(np.float64)
            self._taps = 2 * self._half // self.up + 1
        self.reset()

    def reset(self) -> None:
        """Forget everything pushed so far and start a new signal."""
        self._buf = np.zeros(0, np.float64)
        self._offset = 0  # stream index of _buf[0]
        self._n_in = 0
        self._k = 0  # next output index

    @property
    def passthrough(self) -> bool:
        """True when the two rates are equal (samples are returned unchanged)."""
        return self._h is None

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Add input samples; return the output samples that are now complete (float32)."""
        x = np.asarray(samples, dtype=np.float32).reshape(-1)
        if self._h is None:
            self._n_in += x.size
            return x.copy()
        self._buf = np.concatenate([self._buf, x.astype(np.float64)])
        self._n_in += x.size
        # output k needs inputs up to floor((k*down + half) / up) < n_in
        k_end = max(self._k, -(-(self._n_in * self.up - self._half) // self.down))
        return self._emit(k_end)

    def flush(self) -> np.ndarray:
        """End the signal: return the remaining output samples and reset."""
        if self._h is None:
            self.reset()
            return np.zeros(0, np.float32)
        total = -(-self._n_in * self.up // self.down)
        out = self._emit(total)
        self.reset()
        return out

    def _emit(self, k_end: int) -> np.ndarray:
        if k_end <= self._k:
            return np.zeros(0, np.float32)
        up, down, half, h = self.up, self.down, self._half, self._h
        ks = np.arange(self._k, k_end, dtype=np.int64)
        num = ks * down - half
        j_lo = -((-num) // up)  # ceil(num / up): the first input index inside the filter support
        t0 = num + 2 * half - j_lo * up  # tap index of input j_lo, in (2*half - up, 2*half]
        m = np.arange(self._taps, dtype=np.int64)
        taps = t0[:, None] - m[None, :] * up
        valid = taps >= 0
        weights = np.where(valid, h[np.clip(taps, 0, 2 * half)], 0.0)
        idx = j_lo[:, None] + m[None, :] - self._offset
        inside = valid & (idx >= 0) & (idx < self._buf.size) & (idx + self._offset >= 0)
        values = np.where(inside, self._buf[np.clip(idx, 0, max(self._buf.size - 1, 0))] if self._buf.size else 0.0, 0.0)
        out = (weights * values).sum(axis=1)
        self._k = k_end
        # drop input no later output needs
        keep_from = -((-(self._k * down - half)) // up)
        drop = min(max(0, keep_from - self._offset), self._buf.size)
        if drop:
            self._buf = self._buf[drop:]
            self._offset += drop
        return out.astype(np.float32)
