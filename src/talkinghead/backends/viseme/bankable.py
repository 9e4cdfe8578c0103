"""The viseme animator as a source of the ``bank`` animator (see :mod:`talkinghead.stages.bankable`).

Parameters are the per-frame drive (:data:`~.timeline.CHANNELS`: jaw, lip shapes, tongue,
expression, blink, gaze, head motion); the bank frames are the head region (the only part the
viseme renderer changes); composing pastes that region into the portrait. Playing needs only the
portrait, the region and the jaw scale — no face detection and no fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ...errors import ConfigError
from ...stages import frame_count
from ...values import Audio

__all__ = ["VisemeBankSupport", "VisemePlay"]

#: Bump when the parameters or the rendering of a drive change (invalidates cached banks).
BANK_VERSION = 3


@dataclass(frozen=True)
class PlayFields:
    """The two facts about the deformation fields that playing needs."""

    roi: tuple[int, int, int, int]
    jaw_scale: float


@dataclass(frozen=True, eq=False)
class VisemePlay:
    """What playing a viseme bank needs: the portrait, the head region and the jaw scale."""

    image: np.ndarray
    fields: PlayFields

    @property
    def roi(self) -> tuple[int, int, int, int]:
        return self.fields.roi


class VisemeBankSupport:
    """Mixin of :class:`~.animator.VisemeAnimator` implementing :class:`~talkinghead.stages.BankableAnimator`."""

    seed: int

    def bank_fingerprint(self) -> dict[str, Any]:
        """The drive's channels and the seed (it seeds the grain painted into the mouth)."""
        from .timeline import CHANNELS

        return {"animator": "viseme", "version": BANK_VERSION, "channels": list(CHANNELS), "seed": self.seed}

    def bank_state(self, prepared: Any) -> dict[str, np.ndarray]:
        return {
            "image": np.ascontiguousarray(prepared.image),
            "roi": np.asarray(prepared.fields.roi, np.int64),
            "jaw_scale": np.asarray([prepared.fields.jaw_scale], np.float64),
        }

    def bank_restore(self, state: dict[str, np.ndarray]) -> VisemePlay:
        try:
            image = np.asarray(state["image"])
            roi = tuple(int(v) for v in np.asarray(state["roi"]).reshape(4))
            jaw_scale = float(np.asarray(state["jaw_scale"]).reshape(-1)[0])
        except (KeyError, ValueError, IndexError) as exc:
            raise ConfigError(f"not a viseme bank state ({exc}); rebuild the bank") from exc
        h, w = image.shape[:2]
        x0, y0, x1, y1 = roi
        if image.dtype != np.uint8 or image.ndim != 3 or not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
            raise ConfigError("the viseme bank state is inconsistent (image or region); rebuild the bank")
        return VisemePlay(image, PlayFields(roi, jaw_scale if jaw_scale > 0 else 1.0))

    def bank_parameters(self, play: VisemePlay, audio: Audio, *, fps: float) -> np.ndarray:
        """The drive the animator renders for ``audio`` (its own ``drive()``, on the play state)."""
        return np.asarray(self.drive(play, audio, fps=fps, n=frame_count(audio.duration, fps)).values, np.float32)

    def bank_render(self, prepared: Any, params: np.ndarray) -> np.ndarray:
        from .render import FrameRenderer
        from .timeline import CHANNELS

        params = np.asarray(params, np.float64).reshape(-1, len(CHANNELS))
        renderer = FrameRenderer(prepared.image, prepared.fields, prepared.look, seed=self.seed)
        x0, y0, x1, y1 = prepared.fields.roi
        out = np.empty((len(params), y1 - y0, x1 - x0, 3), np.uint8)
        frame = np.empty_like(prepared.image)
        for k, row in enumerate(params):
            frame[...] = prepared.image
            renderer.render(frame, row)
            out[k] = frame[y0:y1, x0:x1]
        return out

    def bank_compose(self, play: VisemePlay, frames: np.ndarray) -> np.ndarray:
        x0, y0, x1, y1 = play.roi
        out = np.empty((len(frames),) + play.image.shape, np.uint8)
        out[...] = play.image
        out[:, y0:y1, x0:x1] = frames
        return out
