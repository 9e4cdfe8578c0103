"""What an animator implements so that the ``bank`` animator can pre-render and replay it.

The ``bank`` animator (``talkinghead.backends.bank``) renders a few frames of a portrait once, at
chosen *driving parameters* of the source animator, and at run time turns new audio into the same
parameters (cheaply) and interpolates between the nearest pre-rendered frames. A source animator
makes that possible by implementing six methods, split by when they run:

- once per portrait, while a bank is built: :meth:`~BankableAnimator.bank_state` (what playing will
  need of the prepared portrait, as plain arrays) and :meth:`~BankableAnimator.bank_render` (the
  expensive renderer, called on the K chosen parameter vectors);
- at play time, from those arrays alone (possibly read from an avatar pack on another machine):
  :meth:`~BankableAnimator.bank_restore`, :meth:`~BankableAnimator.bank_parameters` (audio ->
  per-frame parameters: the cheap part of the animator) and :meth:`~BankableAnimator.bank_compose`
  (region frames -> output frames, e.g. paste-back into the portrait);
- :meth:`~BankableAnimator.bank_fingerprint` says which banks a configuration can reuse.

Optionally, ``bank_parameter_stream(play, audio, *, fps)`` yields the same parameters in blocks, the
first as early as it can (SadTalker: after one PoseVAE chunk instead of the whole clip); the bank
animator then renders its first frames before the clip's parameters are complete.

Parameters are real vectors in which nearby means "looks alike" (the bank measures distances after
scaling each dimension by its spread over a speech set): SadTalker uses its 15 driving 3-D
keypoints (expression + head pose), the viseme animator its per-frame drive (jaw, lip shape, blink,
head motion).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..values import Audio

__all__ = ["BankableAnimator", "is_bankable"]


@runtime_checkable
class BankableAnimator(Protocol):
    """An :class:`~talkinghead.stages.Animator` the ``bank`` animator can use as its source."""

    def bank_fingerprint(self) -> dict[str, Any]:
        """JSON-able description of everything that changes the frames :meth:`bank_render` makes.

        A bank is reused only when the fingerprint is equal. The key ``"weights"``, if present,
        identifies local weight files: it is part of the cache key but is not required to match when
        an avatar pack is loaded explicitly (a pack built on another machine).
        """
        ...

    def bank_state(self, prepared: Any) -> dict[str, np.ndarray]:
        """What playing needs of the prepared portrait, as named numpy arrays (saved in the pack)."""
        ...

    def bank_restore(self, state: dict[str, np.ndarray]) -> Any:
        """The play context (any object) rebuilt from :meth:`bank_state`'s arrays."""
        ...

    def bank_parameters(self, play: Any, audio: Audio, *, fps: float) -> np.ndarray:
        """(T, D) float32 driving parameters, ``T = frame_count(audio.duration, fps)``.

        Must be cheap (no rendering) and load only what it needs: it runs for every clip.
        """
        ...

    def bank_render(self, prepared: Any, params: np.ndarray) -> np.ndarray:
        """(N, h, w, 3) uint8 region frames for (N, D) parameters (the expensive renderer)."""
        ...

    def bank_compose(self, play: Any, frames: np.ndarray) -> np.ndarray:
        """(N, h, w, 3) region frames -> (N, H, W, 3) output frames (paste-back, resize)."""
        ...


def is_bankable(animator: Any) -> bool:
    """Whether ``animator`` implements every :class:`BankableAnimator` method."""
    return isinstance(animator, BankableAnimator)
