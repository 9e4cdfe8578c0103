"""Face detection and the 478-point face mesh, both from mediapipe.

Faces are found with mediapipe's full-range face detector (it also sees small or several faces);
the chosen face is then cropped and measured with the face mesh (``refine_landmarks=True``).
mediapipe is imported inside the functions so that importing this module stays light.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ...errors import MissingDependencyError, NoFaceError
from ...faces import select_face
from ...values import Face

__all__ = ["FaceMeshDetector", "import_mediapipe", "LIPS_INNER_UPPER", "LIPS_INNER_LOWER"]

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


def import_mediapipe():
    """Import mediapipe or raise :class:`MissingDependencyError` naming the ``viseme`` extra."""
    try:
        import mediapipe as mp
    except ImportError as exc:
        raise MissingDependencyError("mediapipe", "viseme", "the viseme animator's face landmarks") from exc
    return mp


@dataclass
class FaceMeshDetector:
    """mediapipe face detector + face mesh, created lazily (one per animator, not global).

    Args:
        max_faces: most faces reported by the detector.
        min_confidence: detector score threshold.
    """

    max_faces: int = 4
    min_confidence: float = 0.5

    def __post_init__(self) -> None:
        self._detector = None
        self._mesh = None

    def load(self) -> None:
        if self._detector is not None:
            return
        mp = import_mediapipe()
        self._detector = mp.solutions.face_detection.FaceDetection(
            model_selection=1, min_detection_confidence=self.min_confidence
        )
        self._mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=True, refine_landmarks=True, max_num_faces=1, min_detection_confidence=0.3
        )

    def close(self) -> None:
        for obj in (self._detector, self._mesh):
            if obj is not None:
                obj.close()
        self._detector = self._mesh = None

    def detect(self, image: np.ndarray) -> list[Face]:
        """Face boxes (pixels) in an RGB uint8 image, largest first."""
        self.load()
        h, w = image.shape[:2]
        result = self._detector.process(np.ascontiguousarray(image))
        faces = []
        for det in (result.detections or [])[: self.max_faces * 2]:
            b = det.location_data.relative_bounding_box
            x1, y1 = max(0.0, b.xmin * w), max(0.0, b.ymin * h)
            x2, y2 = min(float(w), (b.xmin + b.width) * w), min(float(h), (b.ymin + b.height) * h)
            if x2 > x1 and y2 > y1:
                faces.append(Face((x1, y1, x2, y2), float(det.score[0]) if det.score else 1.0))
        faces.sort(key=lambda f: -f.area)
        return faces[: self.max_faces]

    def mesh(self, image: np.ndarray, box: Sequence[float]) -> np.ndarray | None:
        """The 478 face-mesh landmarks (pixels, (478, 2)) of the face in ``box``, or None."""
        self.load()
        import cv2

        h, w = image.shape[:2]
        x1, y1, x2, y2 = box
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        side = 2.2 * max(x2 - x1, y2 - y1)
        a, b = int(max(0, cx - side / 2)), int(max(0, cy - side / 2))
        c, d = int(min(w, cx + side / 2)), int(min(h, cy + side / 2))
        crop = image[b:d, a:c]
        scale = 1.0
        if max(crop.shape[:2]) < 256:  # the mesh is more precise on a larger crop
            scale = 256 / max(crop.shape[:2])
            crop = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
        result = self._mesh.process(np.ascontiguousarray(crop))
        if not result.multi_face_landmarks:
            return None
        lm = result.multi_face_landmarks[0].landmark
        ch, cw = crop.shape[:2]
        pts = np.array([(p.x * cw, p.y * ch) for p in lm], dtype=np.float64)
        return pts / scale + np.array([a, b], dtype=np.float64)

    def find(self, image: np.ndarray, *, multiple_faces: str = "largest", what: str = "the portrait") -> Face:
        """Detect, choose (see :func:`~talkinghead.faces.select_face`) and measure one face.

        Returns:
            The chosen :class:`Face` with ``landmarks`` (478, 2) in pixels.

        Raises:
            NoFaceError, MultipleFacesError, FaceTooSmallError: as :func:`select_face`.
        """
        faces = self.detect(image)
        face = select_face(faces, multiple_faces=multiple_faces, what=what)
        pts = self.mesh(image, face.box)
        if pts is None:
            raise NoFaceError(
                f"a face was found in {what} but its landmarks could not be measured; "
                "use a sharper, front-facing photo with the whole face visible"
            )
        return Face(face.box, face.score, pts)
