"""Animator stage: a portrait plus speech becomes frames."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from fractions import Fraction
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


@runtime_checkable
class AnimatorStream(Protocol):
    """One live stream of one portrait: an endless run of frames on the stream's clock.

    Frame ``i`` of the stream covers audio samples ``[i * spf, (i + 1) * spf)``. While pushed speech
    is pending, :meth:`render` returns its frames; after it, idle frames (blinks, breathing, small
    head motion, mouth closed) that join the speech without a jump. All per-stream state lives here,
    never on the (shared) animator.
    """

    next_frame: int
    """Global index of the next frame :meth:`render` returns."""

    def push(self, audio: Audio) -> None:
        """Append speech at the stream's sample rate; it starts at the first frame not yet rendered
        when no speech is pending, else right after the pending speech. Phoneme times are relative
        to the start of ``audio``."""
        ...

    def end_speech(self) -> None:
        """The speech pushed so far is complete: its last frame is padded with silence and every
        pending frame may be rendered."""
        ...

    def pending(self) -> int:
        """Frames of pushed speech not yet rendered (whole frames; a partial frame counts once ended)."""
        ...

    def ready(self) -> int:
        """How many pending frames can be rendered now with all the audio they depend on."""
        ...

    def render(self, n: int) -> FrameChunk:
        """Render the next ``n`` frames: pending speech first, idle frames after it.

        While speech is pushed but not ended, ``n`` may not exceed :meth:`pending` (frames beyond
        :meth:`ready` are rendered with the look-ahead that is there).
        """
        ...

    def clear(self) -> None:
        """Drop pushed speech that is not rendered yet (barge-in); the next frames are idle."""
        ...

    def close(self) -> None:
        """Release what the stream holds."""
        ...


@runtime_checkable
class StreamingAnimator(Protocol):
    """An animator that renders live streams natively (capability ``"stream"``).

    Any other :class:`Animator` streams through :func:`talkinghead.streaming.open_animator_stream`,
    which animates each speech segment as a clip.
    """

    def open_stream(
        self, prepared: Any, *, fps: Fraction, sample_rate: int, first_frame: int = 0
    ) -> AnimatorStream:
        """Start a stream of the portrait ``prepared`` (the result of :meth:`Animator.prepare`)."""
        ...


def check_render(n: int, pending: int, speech_ended: bool) -> int:
    """Validate an :meth:`AnimatorStream.render` request; returns ``n`` as an int.

    Raises:
        ValueError: ``n < 1``, or more frames than the pending speech while it has not ended.
    """
    n = int(n)
    if n < 1:
        raise ValueError(f"render needs n >= 1, got {n}")
    if not speech_ended and n > pending:
        raise ValueError(f"only {pending} frames of speech are pending; push more or end the speech")
    return n


def frame_count(duration: float, fps: float) -> int:
    """The number of frames every animator renders for ``duration`` seconds at ``fps``.

    Rounded to the nearest frame so that audio and video lengths agree to within half a frame.
    """
    return max(1, int(round(duration * fps)))
