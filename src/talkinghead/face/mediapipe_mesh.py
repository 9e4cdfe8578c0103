"""The mediapipe face-mesh backend: ``mediapipe.solutions`` face detection and the 478-point face mesh.

This module is the only place in talkinghead that touches mediapipe (pinned to 0.10.21, the last
release that ships face models and ``mediapipe.solutions``; it needs protobuf < 5, Python <= 3.12).
:class:`talkinghead.face.litert_mesh.LiteRTMesh` runs the same models without it.

A mediapipe graph is not thread-safe: concurrent ``process()`` calls fail with "Packet timestamp
mismatch" and leave the graph broken, or return one thread's result to another. Every call here runs
under the instance's lock, and a graph that raised is rebuilt before the next call.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import numpy as np

from ..errors import MissingDependencyError
from ..values import Face
from .quiet import native_output

log = logging.getLogger(__name__)

__all__ = ["MediaPipeMesh", "import_mediapipe"]

#: Side of the square crop around a face box that the mesh is run on (× the box's longer side).
MESH_CROP = 2.2
#: Crops smaller than this are upscaled first: the mesh is more precise on a larger crop.
MESH_MIN_SIDE = 256


def import_mediapipe():
    """Import mediapipe or raise :class:`MissingDependencyError` naming the ``viseme`` extra."""
    try:
        with native_output():
            import mediapipe as mp
            from mediapipe.python import solutions  # noqa: F401 - fails under protobuf >= 5
    except ImportError as exc:
        raise MissingDependencyError("mediapipe", "viseme", "face landmarks (or install the litert extra)") from exc
    return mp


def square_crop(image: np.ndarray, box, scale: float = MESH_CROP, min_side: int = MESH_MIN_SIDE):
    """A square crop of ``scale`` × the box's longer side around its centre, padded with black where it
    leaves the image, upscaled to at least ``min_side``. Returns (crop, x0, y0, k): image = (x0, y0) + crop / k."""
    import cv2

    x1, y1, x2, y2 = (float(v) for v in box)
    side = max(2.0, scale * max(x2 - x1, y2 - y1))
    x0, y0 = (x1 + x2) / 2 - side / 2, (y1 + y2) / 2 - side / 2
    out = int(round(max(side, min_side)))
    k = out / side
    m = np.array([[k, 0.0, -x0 * k], [0.0, k, -y0 * k]])
    crop = cv2.warpAffine(image, m, (out, out), flags=cv2.INTER_CUBIC if k > 1 else cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
    return crop, x0, y0, k


class MediaPipeMesh:
    """Face boxes and the 478-point mesh from ``mediapipe.solutions`` (bundled models, no download).

    Args:
        min_confidence: Detector score threshold.
        max_faces: Most faces one detection reports.
    """

    name = "mediapipe"

    def __init__(self, *, min_confidence: float = 0.5, max_faces: int = 8) -> None:
        self.min_confidence = float(min_confidence)
        self.max_faces = int(max_faces)
        self._lock = threading.Lock()
        self._graphs: dict[str, Any] = {}

    def load(self) -> None:
        """Import mediapipe and build the full-range detector (the others are built on first use)."""
        with self._lock:
            self._graph("full")

    def _graph(self, kind: str):  # call with the lock held
        g = self._graphs.get(kind)
        if g is None:
            mp = import_mediapipe()
            with native_output():
                if kind == "mesh":
                    g = mp.solutions.face_mesh.FaceMesh(static_image_mode=True, refine_landmarks=True,
                                                        max_num_faces=1, min_detection_confidence=0.3)
                else:
                    g = mp.solutions.face_detection.FaceDetection(
                        model_selection=1 if kind == "full" else 0, min_detection_confidence=self.min_confidence)
                # The graph opens its calculators (and logs) on worker threads after the constructor
                # returns; one call on a blank image waits for that, inside the capture.
                g.process(np.zeros((64, 64, 3), np.uint8))
            self._graphs[kind] = g
        return g

    def _process(self, kind: str, image: np.ndarray):
        with self._lock:
            graph = self._graph(kind)
            try:
                with native_output():
                    return graph.process(np.ascontiguousarray(image))
            except Exception:
                self._drop(kind)  # a graph that raised stays broken ("Graph has errors"): rebuild it
                raise

    def _drop(self, kind: str) -> None:
        g = self._graphs.pop(kind, None)
        if g is not None:
            try:
                with native_output():
                    g.close()
            except Exception as exc:  # closing a broken graph may fail too
                log.debug("closing the %s graph failed: %s", kind, exc)

    def close(self) -> None:
        """Release the graphs (they are rebuilt on the next call)."""
        with self._lock:
            for kind in list(self._graphs):
                self._drop(kind)

    def detect(self, image: np.ndarray, *, model: str = "full") -> list[Face]:
        """Faces in an RGB uint8 image, largest first, each with its six keypoints as ``landmarks``.

        Args:
            model: ``"full"`` (full-range, also small faces) or ``"short"`` (faces filling much of the image).
        """
        if model not in ("full", "short"):
            raise ValueError(f"model must be 'full' or 'short', got {model!r}")
        h, w = image.shape[:2]
        result = self._process(model, image)
        faces = []
        for det in (result.detections or [])[: self.max_faces * 2]:
            b = det.location_data.relative_bounding_box
            x1, y1 = max(0.0, b.xmin * w), max(0.0, b.ymin * h)
            x2, y2 = min(float(w), (b.xmin + b.width) * w), min(float(h), (b.ymin + b.height) * h)
            kps = np.array([(k.x * w, k.y * h) for k in det.location_data.relative_keypoints], np.float64)
            if x2 > x1 and y2 > y1:
                faces.append(Face((x1, y1, x2, y2), float(det.score[0]) if det.score else 1.0, kps))
        faces.sort(key=lambda f: -f.area)
        return faces[: self.max_faces]

    def mesh(self, image: np.ndarray, face: Face) -> np.ndarray | None:
        """The 478 mesh landmarks (pixels, (478, 2)) of the face in ``face.box``, or None.

        The mesh graph finds the face again inside a square crop of 2.2 × the box (padded with black
        where the crop leaves the image, so faces touching the border keep their surroundings).
        """
        crop, x0, y0, k = square_crop(image, face.box)
        result = self._process("mesh", crop)
        if not result.multi_face_landmarks:
            return None
        lm = result.multi_face_landmarks[0].landmark
        side = crop.shape[0]
        pts = np.array([(p.x * side, p.y * side) for p in lm], dtype=np.float64)
        return pts / k + np.array([x0, y0])
