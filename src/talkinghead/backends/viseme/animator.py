"""The ``viseme`` animator: the embedded, offline default."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ...errors import ConfigError
from ...stages import BackendBase, ProgressCallback, frame_count
from ...values import Audio, Face, FrameChunk, Portrait
from .bankable import VisemeBankSupport

log = logging.getLogger(__name__)

__all__ = ["VisemeAnimator", "PreparedPortrait"]


@dataclass(frozen=True, eq=False)
class PreparedPortrait:
    """What :meth:`VisemeAnimator.prepare` computes once per portrait."""

    image: np.ndarray
    face: Face
    fields: Any  # fields.FieldBank


class VisemeAnimator(VisemeBankSupport, BackendBase):
    """Animates the portrait itself with precomputed warp fields driven by visemes and loudness.

    It needs no weights beyond mediapipe's bundled face models and runs far faster than real time
    on a CPU. Mouth shapes follow the TTS phoneme timings when present, otherwise the sound.

    Args:
        seed: seeds blinks and head motion; the same seed gives the same frames.
        mouth_scale: how wide the mouth opens (1.0 ≈ 24 % of the mouth width at full loudness).
        blink_rate: blinks per minute (0 disables blinking).
        head_motion: scale of the subtle head sway (0 keeps the head still).
        chunk_size: frames per yielded :class:`FrameChunk`.
        use_phonemes: use the audio's phoneme timings when present (False: sound only).
        max_faces: most faces the detector reports (for ``multiple_faces``).
    """

    stage: ClassVar[str] = "animator"
    name: ClassVar[str] = "viseme"
    capabilities: ClassVar[frozenset[str]] = frozenset({"offline", "cpu", "phonemes", "bankable"})

    def __init__(
        self,
        *,
        seed: int = 0,
        mouth_scale: float = 1.0,
        blink_rate: float = 15.0,
        head_motion: float = 1.0,
        chunk_size: int = 16,
        use_phonemes: bool = True,
        max_faces: int = 4,
    ) -> None:
        if not 0.0 <= float(mouth_scale) <= 2.0:
            raise ConfigError(f"mouth_scale must be between 0 and 2, got {mouth_scale}")
        if not 0.0 <= float(blink_rate) <= 60.0:
            raise ConfigError(f"blink_rate must be between 0 and 60 blinks per minute, got {blink_rate}")
        if not 0.0 <= float(head_motion) <= 3.0:
            raise ConfigError(f"head_motion must be between 0 and 3, got {head_motion}")
        if int(chunk_size) < 1:
            raise ConfigError(f"chunk_size must be at least 1, got {chunk_size}")
        if int(max_faces) < 1:
            raise ConfigError(f"max_faces must be at least 1, got {max_faces}")
        self.seed = int(seed)
        self.mouth_scale = float(mouth_scale)
        self.blink_rate = float(blink_rate)
        self.head_motion = float(head_motion)
        self.chunk_size = int(chunk_size)
        self.use_phonemes = bool(use_phonemes)
        self.max_faces = int(max_faces)
        self._detector = None

    def load(self) -> None:
        """Load mediapipe's face detector and face mesh (bundled with the mediapipe package)."""
        if self._detector is not None:
            return
        from .landmarks import FaceMeshDetector

        detector = FaceMeshDetector(max_faces=self.max_faces)
        detector.load()  # raises MissingDependencyError("mediapipe", "viseme") when absent
        self._detector = detector

    def close(self) -> None:
        if self._detector is not None:
            self._detector.close()
        self._detector = None

    def prepare(self, portrait: Portrait, *, multiple_faces: str = "largest") -> PreparedPortrait:
        """Find the face, measure its landmarks and build its deformation fields.

        Raises:
            NoFaceError, MultipleFacesError, FaceTooSmallError: the portrait cannot be animated.
        """
        self.load()
        from .fields import build_fields

        face = self._detector.find(portrait.image, multiple_faces=multiple_faces)
        # Openings wider than the default need larger fields; narrower ones just scale the drive.
        bank = build_fields(face.landmarks, portrait.size, jaw_scale=max(1.0, self.mouth_scale))
        log.debug("viseme: face %s, head ROI %s, jaw %.1f px", face.box, bank.roi, bank.jaw_px)
        return PreparedPortrait(portrait.image, face, bank)

    def animate(
        self, prepared: PreparedPortrait, audio: Audio, *, fps: float, progress: ProgressCallback | None = None
    ) -> Iterator[FrameChunk]:
        """Yield ``frame_count(audio.duration, fps)`` frames in chunks of ``chunk_size``."""
        from .render import FrameRenderer
        from .timeline import compute_drive

        if not isinstance(prepared, PreparedPortrait):
            raise ConfigError("animate() needs the result of this animator's prepare()")
        n = frame_count(audio.duration, fps)
        drive = compute_drive(
            audio,
            fps,
            n,
            seed=self.seed,
            mouth_scale=self.mouth_scale / prepared.fields.jaw_scale,
            blink_rate=self.blink_rate,
            head_motion=self.head_motion,
            use_phonemes=self.use_phonemes,
        )
        renderer = FrameRenderer(prepared.image, prepared.fields)
        image = prepared.image
        for start in range(0, n, self.chunk_size):
            stop = min(n, start + self.chunk_size)
            frames = np.empty((stop - start,) + image.shape, np.uint8)
            for k, i in enumerate(range(start, stop)):
                frames[k] = image
                w = renderer.weights(drive.jaw[i], drive.spread[i], drive.pucker[i], drive.blink[i], drive.head[i])
                renderer.render(frames[k], w, float(drive.jaw[i]))
            if progress is not None:
                progress(stop, n)
            yield FrameChunk(frames, start)
