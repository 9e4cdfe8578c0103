"""Writer stage: frames plus audio become a file. The only stage that writes to disk."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import ClassVar, Protocol, runtime_checkable

from ..values import Audio, FrameChunk, Video


@runtime_checkable
class Writer(Protocol):
    """Writes a video.

    :meth:`write` consumes the frame iterator as it is produced (streaming) and must write
    atomically: on any error, including one raised by the iterator, no file is left at ``path``
    and the file that was there before is kept (:func:`talkinghead.output.atomic_file` does this).

    ``suffix`` is the default file extension; a writer that produces several declares them all in
    an optional ``suffixes`` class attribute (``(".mp4", ".mov")``). Output paths with another
    extension are refused before any work (:func:`talkinghead.output.check_output_path`).
    """

    stage: ClassVar[str]
    name: ClassVar[str]
    capabilities: ClassVar[frozenset[str]]
    suffix: ClassVar[str]

    def load(self) -> None: ...

    def close(self) -> None: ...

    def write(self, frames: Iterable[FrameChunk], audio: Audio | None, path: Path, *, fps: float) -> Video:
        """Write ``frames`` (and ``audio``) to ``path`` and describe the result."""
        ...
