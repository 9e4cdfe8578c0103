"""An example talkinghead plug-in providing the ``pulse`` animator.

The animator zooms the portrait slightly with the loudness of the speech. It is deliberately
simple: it shows the Animator protocol (prepare once per portrait, yield frames in chunks, report
progress) and how a plug-in registers a backend.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np

from talkinghead import hookimpl
from talkinghead.stages import BackendBase, frame_count
from talkinghead import Audio, FrameChunk, Portrait


class PulseAnimator(BackendBase):
    """Zooms the portrait with the loudness of the voice (example plug-in).

    Args:
        strength: the largest zoom, as a fraction of the image size.
        chunk_size: frames per chunk.
    """

    stage: ClassVar[str] = "animator"
    name: ClassVar[str] = "pulse"
    capabilities: ClassVar[frozenset[str]] = frozenset({"offline"})

    def __init__(self, *, strength: float = 0.04, chunk_size: int = 10) -> None:
        self.strength = strength
        self.chunk_size = chunk_size

    def prepare(self, portrait: Portrait, *, multiple_faces: str = "largest") -> Any:
        # Real animators detect the face here; the result is cached per portrait by the Avatar.
        return portrait.image

    def animate(self, prepared: Any, audio: Audio, *, fps: float, progress=None) -> Iterator[FrameChunk]:
        image: np.ndarray = prepared
        h, w = image.shape[:2]
        n = frame_count(audio.duration, fps)
        level = audio.rms_envelope(fps, n)
        level = level / (level.max() + 1e-9)
        ys, xs = np.mgrid[0:h, 0:w]
        for start in range(0, n, self.chunk_size):
            stop = min(n, start + self.chunk_size)
            frames = np.empty((stop - start, h, w, 3), np.uint8)
            for k, i in enumerate(range(start, stop)):
                zoom = 1.0 + self.strength * float(level[i])
                sy = np.clip(((ys - h / 2) / zoom + h / 2).astype(np.int32), 0, h - 1)
                sx = np.clip(((xs - w / 2) / zoom + w / 2).astype(np.int32), 0, w - 1)
                frames[k] = image[sy, sx]
            if progress is not None:
                progress(stop, n)
            yield FrameChunk(frames, start)


@hookimpl
def register_backends(register) -> None:
    register(PulseAnimator)
