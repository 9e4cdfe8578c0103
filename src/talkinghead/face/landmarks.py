"""Landmarks: the 478-point mesh of a face, the 68-point (iBUG) scheme, and the protocol animators use.

* :class:`MeshLandmarks` finds faces (:func:`~talkinghead.face.detection.find_faces`: full-range, short-range,
  padded, contrast-normalised, tiled) and measures the 478-point mesh with a swappable
  :class:`~talkinghead.face.mesh.MeshBackend` (mediapipe or LiteRT).
* :class:`LandmarkSource` is the 68-point protocol of SadTalker's preprocessing: :class:`Mesh68Landmarks`
  (the mesh mapped with :data:`MEDIAPIPE_TO_68`) and :class:`~talkinghead.face.awing.AWingLandmarks`
  (RetinaFace + AWing FAN, upstream's path) implement it.

Instances hold loaded models and no per-call state: share one between threads.
"""

from __future__ import annotations

import os
import threading
from typing import Protocol, runtime_checkable

import numpy as np

from ..errors import NoFaceError
from ..values import Face
from .detection import find_faces, normalise_contrast
from .mesh import MeshBackend, mesh_backend
from .selection import MIN_FACE_PIXELS, select_face

__all__ = ["LandmarkSource", "MeshLandmarks", "Mesh68Landmarks", "MEDIAPIPE_TO_68"]

#: MediaPipe Face Mesh index for each iBUG-68 point (0-based, image-left = subject's right):
#: jaw 0-16 (ear to ear along the face oval, 8 = chin 152), right brow 17-21 (outer to
#: inner: 70 63 105 66 107), left brow 22-26 (inner to outer: 336 296 334 293 300),
#: nose bridge 27-30 (168 197 5 4), nostrils 31-35 (75 97 2 326 305), right eye 36-41
#: (outer corner 33, upper 160 158, inner 133, lower 153 144), left eye 42-47 (inner
#: 362, upper 385 387, outer 263, lower 373 380), outer lips 48-59 (corner 61, upper 39
#: 37 0 267 269, corner 291, lower 405 314 17 84 181), inner lips 60-67 (78 82 13 312
#: 308 317 14 87). The mesh has no exact jaw contour below the ears, so 0-16 follow
#: the face oval; they are not used by the crop (eyes and mouth corners) or by the
#: 5-point ReconNet alignment (nose tip, eyes, mouth corners).
MEDIAPIPE_TO_68: tuple[int, ...] = (
    127, 234, 93, 132, 58, 172, 136, 150, 152, 379, 365, 397, 288, 361, 323, 454, 356,
    70, 63, 105, 66, 107,
    336, 296, 334, 293, 300,
    168, 197, 5, 4,
    75, 97, 2, 326, 305,
    33, 160, 158, 133, 153, 144,
    362, 385, 387, 263, 373, 380,
    61, 39, 37, 0, 267, 269, 291, 405, 314, 17, 84, 181,
    78, 82, 13, 312, 308, 317, 14, 87,
)  # fmt: skip


@runtime_checkable
class LandmarkSource(Protocol):
    """Anything that finds faces with 68-point (iBUG) landmarks in an RGB image."""

    def detect(self, image: np.ndarray) -> list[Face]:
        """Faces in an (H, W, 3) uint8 RGB image, each with (68, 2) landmarks in pixels."""
        ...


class MeshLandmarks:
    """Faces and their 478-point mesh, on the backend named by ``backend``.

    Args:
        backend: ``"auto"`` (mediapipe if it runs, else LiteRT), ``"mediapipe"``, ``"litert"``, or a
            :class:`~talkinghead.face.mesh.MeshBackend` instance.
        max_faces: Most faces :meth:`detect` reports.
        min_confidence: Detector score threshold.
        model_dir: Folder of the LiteRT model files (see :mod:`talkinghead.face.litert_mesh`).
        tiles: Search large images in tiles when a whole-image pass finds nothing.
    """

    def __init__(
        self,
        backend: str | MeshBackend = "auto",
        *,
        max_faces: int = 4,
        min_confidence: float = 0.5,
        model_dir: str | os.PathLike[str] | None = None,
        tiles: bool = True,
    ) -> None:
        self._spec = backend
        self.max_faces = int(max_faces)
        self.min_confidence = float(min_confidence)
        self.model_dir = model_dir
        self.tiles = bool(tiles)
        self._backend: MeshBackend | None = None if isinstance(backend, str) else backend
        self._lock = threading.Lock()

    @property
    def backend(self) -> MeshBackend:
        """The loaded mesh backend (chosen and loaded on first use)."""
        if self._backend is None:
            with self._lock:
                if self._backend is None:
                    self._backend = mesh_backend(str(self._spec), min_confidence=self.min_confidence,
                                                 model_dir=self.model_dir)
        return self._backend

    @property
    def name(self) -> str:
        """The backend's name (``"mediapipe"`` or ``"litert"``) once loaded."""
        return self.backend.name

    def load(self) -> None:
        """Choose and load the backend now (raises MissingDependencyError when none can run)."""
        self.backend.load()

    def close(self) -> None:
        """Release the backend's native resources."""
        if self._backend is not None:
            self._backend.close()

    def detect(self, image: np.ndarray) -> list[Face]:
        """Face boxes (six keypoints as ``landmarks``), largest first, by every strategy needed."""
        img = np.ascontiguousarray(image)
        return find_faces(self.backend.detect, img, tiles=self.tiles)[: self.max_faces]

    def measure(self, image: np.ndarray, face: Face) -> np.ndarray | None:
        """The (478, 2) mesh of a detected face, or None; retried on a contrast-normalised copy."""
        img = np.ascontiguousarray(image)
        pts = self.backend.mesh(img, face)
        if pts is None:
            pts = self.backend.mesh(normalise_contrast(img), face)
        return pts

    def faces(self, image: np.ndarray) -> list[Face]:
        """Every detected face with its mesh as ``landmarks`` (faces that cannot be measured are left out)."""
        out = []
        for face in self.detect(image):
            pts = self.measure(image, face)
            if pts is not None:
                out.append(Face(face.box, face.score, pts))
        return out

    def find(
        self,
        image: np.ndarray,
        *,
        multiple_faces: str = "largest",
        min_face: int = MIN_FACE_PIXELS,
        what: str = "the portrait",
    ) -> Face:
        """Detect, choose (see :func:`~talkinghead.face.selection.select_face`) and measure one face.

        Returns:
            The chosen :class:`Face` with ``landmarks`` (478, 2) in pixels.

        Raises:
            NoFaceError, MultipleFacesError, FaceTooSmallError: as :func:`select_face`.
        """
        face = select_face(self.detect(image), multiple_faces=multiple_faces, min_face=min_face, what=what)
        pts = self.measure(image, face)
        if pts is None:
            raise NoFaceError(
                f"a face was found in {what} but its landmarks could not be measured; "
                "use a sharper, front-facing photo with the whole face visible"
            )
        return Face(face.box, face.score, pts)


class Mesh68Landmarks:
    """A :class:`LandmarkSource` reading the 68 iBUG points off the face mesh (:data:`MEDIAPIPE_TO_68`).

    Args:
        mesh: The :class:`MeshLandmarks` to use, or a backend name for a new one.
    """

    def __init__(self, mesh: MeshLandmarks | str = "auto") -> None:
        self.mesh = mesh if isinstance(mesh, MeshLandmarks) else MeshLandmarks(mesh)

    def load(self) -> None:
        """Load the mesh backend."""
        self.mesh.load()

    def detect(self, image: np.ndarray) -> list[Face]:
        """See :class:`LandmarkSource`; boxes span the 468 face points, scores are the detector's."""
        img = np.ascontiguousarray(np.asarray(image, dtype=np.uint8))
        faces: list[Face] = []
        for f in self.mesh.faces(img):
            pts = np.asarray(f.landmarks, np.float32)[:468]
            x1, y1 = pts.min(0)
            x2, y2 = pts.max(0)
            faces.append(Face((float(x1), float(y1), float(x2), float(y2)), f.score, pts[list(MEDIAPIPE_TO_68)]))
        return faces

    def close(self) -> None:
        """Release the mesh backend."""
        self.mesh.close()
