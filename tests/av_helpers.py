"""Checks on received streams, shared by the live and stream=true tests: decode fragmented MP4 with PyAV while
its bytes arrive, and find the lag at which the face follows the voice."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np


class IncrementalDecoder:
    """Feed bytes with :meth:`feed`; a thread decodes them from a pipe as they come.

    ``video`` holds (pts in seconds, decode time, ``measure(rgb)``), ``audio`` (pts in seconds,
    samples as float mono) and ``first_video_at`` the time the first frame was decoded.
    """

    def __init__(self, measure: Callable[[np.ndarray], Any] | None = None) -> None:
        read, write = os.pipe()
        self._write = os.fdopen(write, "wb", buffering=0)
        self._read = os.fdopen(read, "rb", buffering=0)
        self.measure = measure
        self.video: list[tuple[float, float, Any]] = []
        self.audio: list[tuple[float, np.ndarray]] = []
        self.size: tuple[int, int] | None = None
        self.fps: float | None = None
        self.sample_rate: int | None = None
        self.first_video_at: float | None = None
        self.error: BaseException | None = None
        self.bytes = 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def feed(self, data: bytes) -> None:
        self.bytes += len(data)
        self._write.write(data)

    def close(self, timeout: float = 30.0) -> IncrementalDecoder:
        self._write.close()
        self._thread.join(timeout)
        self._read.close()
        return self

    def _run(self) -> None:
        import av

        try:
            container = av.open(self._read, format="mp4", options={"probesize": "32", "analyzeduration": "0"})
            vs, aus = container.streams.video[0], container.streams.audio[0]
            self.fps = float(vs.average_rate or vs.guessed_rate or 0) or None
            self.sample_rate = aus.sample_rate
            for packet in container.demux(vs, aus):
                for frame in packet.decode():
                    if packet.stream.type == "video":
                        if self.first_video_at is None:
                            self.first_video_at = time.perf_counter()
                        image = frame.to_ndarray(format="rgb24")
                        self.size = (image.shape[1], image.shape[0])
                        value = self.measure(image) if self.measure else None
                        self.video.append((float(frame.pts * frame.time_base), time.perf_counter(), value))
                    else:
                        samples = frame.to_ndarray().astype(np.float32).reshape(len(frame.layout.channels), -1)
                        self.audio.append((float(frame.pts * frame.time_base), samples.mean(axis=0)))
            container.close()
        except BaseException as exc:  # reported by the test
            self.error = exc
        finally:
            # keep draining so the writer never blocks on a full pipe
            try:
                while self._read.read(65536):
                    pass
            except (OSError, ValueError):
                pass

    def samples(self, rate: int) -> np.ndarray:
        """The decoded audio placed by its pts (seconds) on a ``rate`` Hz timeline."""
        if not self.audio:
            return np.zeros(0, np.float32)
        end = max(int(round(p * rate)) + len(s) for p, s in self.audio)
        out = np.zeros(max(end, 0), np.float32)
        for p, s in self.audio:
            start = int(round(p * rate))
            if start < 0:
                s, start = s[-start:], 0
            out[start:start + len(s)] = s
        return out


def lag_of_best_match(video: list[tuple[float, float, Any]], samples: np.ndarray, rate: int, fps: float,
                      max_lag: int = 5) -> tuple[int, dict[int, float]]:
    """The frame lag at which per-frame values of ``video`` best follow the audio level (0: in sync)."""
    spf = int(rate / fps)
    frames = {int(round(p * fps)): v for p, _, v in video}
    level = np.array([np.sqrt(np.mean(samples[k * spf:(k + 1) * spf] ** 2)) for k in range(len(samples) // spf)])
    ks = [k for k in sorted(frames) if max_lag <= k < len(level) - max_lag]
    values = np.array([frames[k] for k in ks])
    scores = {lag: float(np.corrcoef(values, level[np.array(ks) + lag])[0, 1]) for lag in range(-max_lag, max_lag + 1)}
    return max(scores, key=scores.get), scores
