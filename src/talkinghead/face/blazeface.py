"""Pre- and post-processing of MediaPipe's face models, in numpy (no mediapipe, no LiteRT here).

What MediaPipe's graphs do around the networks, written from their published configurations:

* **BlazeFace detection** (``face_detection_short_range``: 128² input, 896 anchors from strides
  8/16/16/16 with an interpolated aspect ratio; ``face_detection_full_range``: 192² input, 2304
  anchors from one stride-4 layer): the image is letterboxed into the square input (aspect ratio
  kept, zero border) and scaled to [-1, 1]; each anchor's 16 regressors are (x, y, w, h) of the box
  centre and size plus six (x, y) keypoints, all divided by the input size and offset by the anchor
  centre (anchors have a fixed unit size); scores are clipped to ±100 and passed through a sigmoid;
  overlapping boxes (IoU > 0.3) are merged by *weighted* non-maximum suppression (score-weighted
  mean of the box and keypoints of every overlapping candidate, the best candidate's score).
* **Face landmarks** (``face_landmark``: 192² input in [0, 1] -> 468 × (x, y, z) plus a face-presence
  logit): the crop is a square ROI centred on the detection box, 1.5 × its longer side, rotated so
  that the line between the two eye keypoints is horizontal; points are projected back through the
  same rotation.
* **Iris** (``iris_landmark``: 64² input in [0, 1] -> 71 eye-contour points and 5 iris points): one
  ROI per eye, centred between the eye corners (mesh points 33/133 and 362/263), 2.3 × their span,
  rotated like the face; the second eye is mirrored because the model knows only one eye.

ROI crops map the rectangle's corners onto the corners of the input tensor, as MediaPipe's
``ImageToTensorCalculator`` does; the projections below are the exact inverse.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "DetectorSpec",
    "SHORT_RANGE",
    "FULL_RANGE",
    "ssd_anchors",
    "decode_detections",
    "weighted_nms",
    "Roi",
    "face_roi",
    "eye_roi",
    "crop_roi",
    "letterbox",
]


@dataclass(frozen=True)
class DetectorSpec:
    """Anchor layout and thresholds of one BlazeFace model."""

    size: int
    strides: tuple[int, ...]
    interpolated_scale_aspect_ratio: float
    min_score: float
    num_anchors: int


SHORT_RANGE = DetectorSpec(128, (8, 16, 16, 16), 1.0, 0.5, 896)
FULL_RANGE = DetectorSpec(192, (4,), 0.0, 0.6, 2304)

#: Weighted-NMS overlap threshold of the face detection graphs.
NMS_IOU = 0.3
#: Face-landmark ROI: 1.5 × the detection box's longer side. Iris ROI: 2.3 × the eye-corner span.
FACE_ROI_SCALE = 1.5
EYE_ROI_SCALE = 2.3


def ssd_anchors(spec: DetectorSpec) -> np.ndarray:
    """Anchor centres (N, 2) in [0, 1], in the order the network emits its regressors.

    Layers with the same stride share one feature map; each layer adds one anchor per aspect ratio
    (here 1.0) and, when ``interpolated_scale_aspect_ratio > 0``, one more per cell. Anchor sizes are
    fixed at 1, so only the centres matter.
    """
    centres: list[np.ndarray] = []
    layer = 0
    n_layers = len(spec.strides)
    while layer < n_layers:
        per_cell = 0
        last = layer
        while last < n_layers and spec.strides[last] == spec.strides[layer]:
            per_cell += 1 + (1 if spec.interpolated_scale_aspect_ratio > 0 else 0)
            last += 1
        stride = spec.strides[layer]
        fm = int(math.ceil(spec.size / stride))
        ys, xs = np.meshgrid((np.arange(fm) + 0.5) / fm, (np.arange(fm) + 0.5) / fm, indexing="ij")
        cells = np.stack([xs.ravel(), ys.ravel()], 1)
        centres.append(np.repeat(cells, per_cell, axis=0))
        layer = last
    out = np.concatenate(centres).astype(np.float32)
    if len(out) != spec.num_anchors:  # a wrong spec must never decode silently
        raise ValueError(f"anchor layout gives {len(out)} anchors, the model has {spec.num_anchors}")
    return out


def decode_detections(
    regressors: np.ndarray, scores: np.ndarray, anchors: np.ndarray, spec: DetectorSpec, min_score: float | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw network outputs -> (boxes (K, 4) x1 y1 x2 y2, keypoints (K, 6, 2), scores (K,)), in [0, 1] of the input.

    Args:
        regressors: (N, 16) raw box/keypoint regressors.
        scores: (N,) or (N, 1) raw logits.
        anchors: (N, 2) from :func:`ssd_anchors`.
        spec: The model's spec (input size, default threshold).
        min_score: Keep detections whose sigmoid score is at least this (default: the model's).
    """
    reg = np.asarray(regressors, np.float32).reshape(-1, 16)
    logit = np.clip(np.asarray(scores, np.float64).reshape(-1), -100.0, 100.0)
    prob = (1.0 / (1.0 + np.exp(-logit))).astype(np.float32)
    keep = prob >= (spec.min_score if min_score is None else min_score)
    reg, prob, anc = reg[keep], prob[keep], anchors[keep]
    s = float(spec.size)
    cx = reg[:, 0] / s + anc[:, 0]
    cy = reg[:, 1] / s + anc[:, 1]
    w = reg[:, 2] / s
    h = reg[:, 3] / s
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1)
    kps = reg[:, 4:16].reshape(-1, 6, 2) / s + anc[:, None, :]
    return boxes, kps, prob


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    x1 = np.maximum(box[0], boxes[:, 0])
    y1 = np.maximum(box[1], boxes[:, 1])
    x2 = np.minimum(box[2], boxes[:, 2])
    y2 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    union = area + areas - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def weighted_nms(
    boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray, iou: float = NMS_IOU
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MediaPipe's weighted NMS: merge each cluster of overlapping detections into their score-weighted mean.

    The highest-scoring remaining detection seeds a cluster of every remaining detection whose IoU
    with it exceeds ``iou``; the cluster's box and keypoints are averaged with the scores as weights
    and keep the seed's score. Returns arrays in descending score order.
    """
    order = np.argsort(-scores, kind="stable")
    boxes, keypoints, scores = boxes[order], keypoints[order], scores[order]
    remaining = np.arange(len(scores))
    out_b, out_k, out_s = [], [], []
    while len(remaining):
        seed = remaining[0]
        overlap = _iou(boxes[seed], boxes[remaining]) > iou
        overlap[0] = True
        members = remaining[overlap]
        w = scores[members][:, None]
        total = float(w.sum())
        out_b.append((boxes[members] * w).sum(0) / total)
        out_k.append((keypoints[members] * w[:, :, None]).sum(0) / total)
        out_s.append(scores[seed])
        remaining = remaining[~overlap]
    if not out_s:
        return np.zeros((0, 4), np.float32), np.zeros((0, 6, 2), np.float32), np.zeros(0, np.float32)
    return np.stack(out_b).astype(np.float32), np.stack(out_k).astype(np.float32), np.asarray(out_s, np.float32)


def letterbox(width: int, height: int, size: int) -> tuple[np.ndarray, float, float, float]:
    """The 2x3 image -> tensor affine that fits the whole image into ``size``² keeping its aspect ratio.

    Returns:
        (affine, side, x0, y0): ``side`` is the image-pixel length the tensor's side covers and (x0, y0)
        the image point at the tensor's top-left corner, so ``image = (x0, y0) + tensor_normalised * side``.
    """
    side = float(max(width, height))
    x0 = (width - side) / 2.0
    y0 = (height - side) / 2.0
    k = size / side
    return np.array([[k, 0.0, -x0 * k], [0.0, k, -y0 * k]]), side, x0, y0


@dataclass(frozen=True)
class Roi:
    """A square region of interest rotated by ``angle`` radians (clockwise on screen) about its centre."""

    cx: float
    cy: float
    side: float
    angle: float

    def to_image(self, size: int) -> np.ndarray:
        """2x3 affine from tensor pixels (``size``² crop, corners on corners) to image pixels."""
        c, s = math.cos(self.angle), math.sin(self.angle)
        k = self.side / size
        rot = np.array([[c, -s], [s, c]]) * k
        t = np.array([self.cx, self.cy]) - rot @ np.array([size / 2.0, size / 2.0])
        return np.hstack([rot, t[:, None]])

    def project(self, points: np.ndarray, size: int) -> np.ndarray:
        """(N, 2) points in tensor pixels -> image pixels."""
        m = self.to_image(size)
        p = np.asarray(points, np.float64).reshape(-1, 2)
        return p @ m[:, :2].T + m[:, 2]


def _normalize_angle(a: float) -> float:
    return a - 2 * math.pi * math.floor((a + math.pi) / (2 * math.pi))


def _angle(p0: np.ndarray, p1: np.ndarray) -> float:
    return _normalize_angle(-math.atan2(-(float(p1[1]) - float(p0[1])), float(p1[0]) - float(p0[0])))


def face_roi(box: np.ndarray, eye_a: np.ndarray, eye_b: np.ndarray) -> Roi:
    """The face-landmark ROI of a detection: box centre, 1.5 × its longer side, eyes level."""
    x1, y1, x2, y2 = (float(v) for v in box)
    side = FACE_ROI_SCALE * max(x2 - x1, y2 - y1)
    return Roi((x1 + x2) / 2, (y1 + y2) / 2, side, _angle(eye_a, eye_b))


def eye_roi(corner_a: np.ndarray, corner_b: np.ndarray) -> Roi:
    """The iris ROI of one eye from its two corners: their box's centre, 2.3 × its longer side."""
    a, b = np.asarray(corner_a, np.float64), np.asarray(corner_b, np.float64)
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    side = EYE_ROI_SCALE * float(max(hi - lo))
    c = (lo + hi) / 2
    return Roi(float(c[0]), float(c[1]), side, _angle(a, b))


def crop_roi(image: np.ndarray, roi: Roi, size: int, *, flip: bool = False, replicate: bool = True) -> np.ndarray:
    """The ``size``² crop of ``roi`` (bilinear; border replicated or zero), optionally mirrored."""
    import cv2

    m = roi.to_image(size)
    if flip:  # mirror the crop's pixels (column i <-> size - 1 - i), as cv::flip does after the crop
        m = m @ np.array([[-1.0, 0.0, size - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    border = cv2.BORDER_REPLICATE if replicate else cv2.BORDER_CONSTANT
    return cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=border)
