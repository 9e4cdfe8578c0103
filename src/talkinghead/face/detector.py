"""Public face-detector API: RetinaFace on RGB frames -> :class:`talkinghead.values.Face` lists.

>>> det = FaceDetector()                       # doctest: +SKIP
>>> faces = det.detect(portrait.image)         # doctest: +SKIP
>>> faces[0].box, faces[0].landmarks.shape     # doctest: +SKIP
((x1, y1, x2, y2), (5, 2))

Weights: ``weights_path`` if given, else the weights cache entry (``retinaface-mobilenet0.25`` ->
``detection_mobilenet0.25_Final.pth``, ``retinaface-resnet50`` -> ``detection_Resnet50_Final.pth``),
found with :func:`talkinghead.weights.resolve`. Torch is imported in :meth:`FaceDetector.load` only.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from talkinghead.errors import ImageError, ModelLoadError
from talkinghead.values import Face
from talkinghead.weights import catalog, missing_file_error, resolve

__all__ = ["FaceDetector", "WEIGHT_FILES", "rows_to_faces"]

#: model -> (weights registry name, official file name, download URL)
WEIGHT_FILES: dict[str, tuple[str, str, str]] = {
    model: (name, catalog.entry(name).filename, catalog.entry(name).urls[0])
    for model, name in (("mobilenet0.25", "retinaface-mobilenet0.25"), ("resnet50", "retinaface-resnet50"))
}


def rows_to_faces(rows: np.ndarray, eye_dist_threshold: float | None = 5.0) -> list[Face]:
    """facexlib ``(K, 15)`` rows -> faces; drop faces whose eye distance is below the threshold (facexlib 0.3.0)."""
    faces = []
    for row in np.asarray(rows, dtype=np.float32).reshape(-1, 15):
        lm = row[5:15].reshape(5, 2).astype(np.float64)
        if eye_dist_threshold is not None and float(np.linalg.norm(lm[0] - lm[1])) < eye_dist_threshold:
            continue
        faces.append(Face(box=tuple(float(v) for v in row[:4]), score=float(row[4]), landmarks=lm))
    return faces


class FaceDetector:
    """RetinaFace detector with facexlib-compatible output.

    Args:
        weights_path: Checkpoint file; default: the weights cache (``talkinghead weights download retinaface``).
        model: ``"mobilenet0.25"`` (1.8 MB, ~17 ms per 512x512 frame on 2 CPU threads) or ``"resnet50"``
            (110 MB, ~190 ms; what GFPGAN/SadTalker use).
        conf: Score threshold (strictly greater). FaceRestoreHelper uses 0.97; facexlib's ``detect_faces`` 0.8.
        nms: NMS IoU threshold.
        eye_dist_threshold: Drop faces whose eyes are closer than this many pixels (side faces, tiny faces);
            None keeps all.
        device: Torch device string.
        batch_size: Frames per forward in :meth:`detect_batch`.
        cache_dir: Weights cache directory for the registry lookup (None: the default cache).
    """

    def __init__(
        self,
        *,
        weights_path: str | os.PathLike[str] | None = None,
        model: str = "mobilenet0.25",
        conf: float = 0.97,
        nms: float = 0.4,
        eye_dist_threshold: float | None = 5.0,
        device: str = "cpu",
        batch_size: int = 8,
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        from talkinghead.face.retinaface import canonical_model_name

        self.model = canonical_model_name(model)
        self.weights_path = None if weights_path is None else Path(weights_path)
        self.conf, self.nms = float(conf), float(nms)
        self.eye_dist_threshold = eye_dist_threshold
        self.device = device
        self.batch_size = int(batch_size)
        self.cache_dir = cache_dir
        self._net: Any = None

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Any], **kwargs: Any) -> FaceDetector:
        """A detector loaded from an in-memory state dict (tests, converted weights)."""
        from talkinghead.face.retinaface import load_retinaface

        det = cls(**kwargs)
        det._net = load_retinaface(state, det.model, det.device)
        return det

    # ------------------------------------------------------------------ weights
    def resolve_weights(self) -> Path:
        """The checkpoint path to load (``weights_path``, else the weights cache).

        Raises:
            WeightsMissingError: the file is not there (names the file, URL and download command).
        """
        return resolve(catalog.entry(WEIGHT_FILES[self.model][0]), self.weights_path, cache_dir=self.cache_dir)

    def load(self) -> None:
        """Load the network (idempotent).

        Raises:
            WeightsMissingError: no checkpoint. ModelLoadError: corrupt or wrong checkpoint.
        """
        if self._net is not None:
            return
        from talkinghead.face.retinaface import load_retinaface

        path = self.resolve_weights()
        try:
            self._net = load_retinaface(path, self.model, self.device)
        except FileNotFoundError as exc:
            raise missing_file_error(catalog.entry(WEIGHT_FILES[self.model][0]), path) from exc
        except ModelLoadError:
            raise

    def close(self) -> None:
        """Release the network."""
        self._net = None

    # ------------------------------------------------------------------ detection
    @staticmethod
    def _check(image: np.ndarray) -> np.ndarray:
        arr = np.asarray(image)
        if arr.ndim != 3 or arr.shape[2] != 3 or arr.shape[0] < 1 or arr.shape[1] < 1:
            raise ImageError(f"expected an RGB image of shape (H, W, 3), got {arr.shape}; convert it to RGB first")
        if arr.dtype != np.uint8:
            raise ImageError(f"expected a uint8 image, got {arr.dtype}; scale it to 0..255 and cast to uint8")
        return arr

    def detect_rows(self, image_rgb: np.ndarray) -> np.ndarray:
        """facexlib ``detect_faces`` rows ``(K, 15)`` for an RGB uint8 image (no eye-distance filter)."""
        from talkinghead.face.retinaface import detect_faces

        self.load()
        arr = self._check(image_rgb)
        return detect_faces(self._net, arr[:, :, ::-1], self.conf, self.nms)

    def detect(self, image_rgb: np.ndarray) -> list[Face]:
        """Faces in one RGB uint8 image, highest score first; empty list if none.

        Raises:
            ImageError: not an (H, W, 3) uint8 array.
        """
        return rows_to_faces(self.detect_rows(image_rgb), self.eye_dist_threshold)

    def detect_batch(self, frames: np.ndarray | Sequence[np.ndarray]) -> list[list[Face]]:
        """Faces per frame for equally sized RGB uint8 frames ``(N, H, W, 3)``, batched through the network."""
        from talkinghead.face.retinaface import detect_faces_batch

        self.load()
        arr = np.asarray(frames)
        if arr.ndim != 4:
            raise ImageError(f"expected frames of shape (N, H, W, 3), got {arr.shape}")
        if len(arr) == 0:
            return []
        self._check(arr[0])
        rows = detect_faces_batch(self._net, arr[..., ::-1], self.conf, self.nms, self.batch_size)
        return [rows_to_faces(r, self.eye_dist_threshold) for r in rows]
