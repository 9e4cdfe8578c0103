"""Animator stage: a portrait plus speech becomes frames."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, ClassVar, Protocol, runtime_checkable

from ..values import Audio, FrameChunk, Portrait

ProgressCallback = Callable[[int, int], None]
"""Called as ``progress(frames_done, frames_total)``."""


@runtime_checkable
class Animator(Protocol):
    """Animates a portrait.

    :meth:`prepare` does the per-portrait work (face detection, landmarks, per-image tensors); its
    result is opaque and is cached by the :class:`~talkinghead.Avatar` per portrait, so it must not
    depend on the audio. :meth:`animate` yields frames in chunks so long clips stream to the writer.
    The number of frames yielded must be ``frame_count(audio.duration, fps)``.
    """

    stage: ClassVar[str]
    name: ClassVar[str]
    capabilities: ClassVar[frozenset[str]]

    def load(self) -> None: ...

    def close(self) -> None: ...

    def prepare(self, portrait: Portrait, *, multiple_faces: str = "largest") -> Any:
        """Per-portrait preprocessing.

        Args:
            multiple_faces: ``"largest"`` or ``"refuse"`` (see :func:`talkinghead.face.selection.select_face`).

        Raises:
            NoFaceError, MultipleFacesError, FaceTooSmallError: the portrait cannot be animated.
        """
        ...

    def animate(
        self, prepared: Any, audio: Audio, *, fps: float, progress: ProgressCallback | None = None
    ) -> Iterator[FrameChunk]:
        """Yield the frames of the clip in order."""
        ...


def frame_count(duration: float, fps: float) -> int:
    """The number of frames every animator renders for ``duration`` seconds at ``fps``.

    Rounded to the nearest frame so that audio and video lengths agree to within half a frame.
    """
    return max(1, int(round(duration * fps)))
