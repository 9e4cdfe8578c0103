"""One pass over a video: per-frame face measurements and picture changes.

Faces are measured with the mediapipe face mesh (478 points with irises), tracked from frame to
frame (each frame's mesh is searched around the previous frame's face and re-detected when lost).
From the points of each frame come the curves the metrics use:

* ``aperture``: inner-lip gap (points 13–14) over the inter-ocular distance (iris centres 468–473);
* ``openness``: eyelid gap over eye width, mean of both eyes (159–145 / 33–133, 386–374 / 362–263);
* ``roll`` (degrees, the iris line's angle), ``yaw`` and ``pitch`` (the nose tip's offset from
  the eyes' midpoint along and across the iris line, in inter-ocular units — proxies of the angles),
  ``x``/``y`` (face centre relative to the first measured frame, inter-ocular units), ``scale``;
* ``ssim``, ``psnr``, ``sharpness``: the face aligned onto the reference face by a similarity
  transform of stable points (eye corners, nose bridge and tip, forehead, cheeks), cropped to the
  reference face's box, 128×128 grey; SSIM and PSNR against the reference crop, Laplacian variance;
* ``difference``: the largest change of any cell of a 32-cell mosaic from the previous frame; and
  the still stretches (:class:`~talkinghead.eval.metrics.StillTracker`: frames within 1.5 grey levels
  of the stretch's first frame).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from ..errors import NoFaceError, VideoError
from .metrics import StillTracker, frame_difference, laplacian_variance, mosaic, psnr, ssim

log = logging.getLogger(__name__)

__all__ = ["CROP", "Curves", "FaceTracker", "face_features", "measure_frames", "read_frames"]

IRIS_A, IRIS_B = 468, 473
LIP_UPPER, LIP_LOWER = 13, 14
EYE_A = (159, 145, 33, 133)
EYE_B = (386, 374, 362, 263)
NOSE_TIP = 1
#: Points that do not move when the mouth moves (eye corners, nose bridge and tip, forehead, cheeks).
STABLE = (33, 133, 362, 263, 168, 6, 197, 1, 10, 234, 454)
FACE_OVAL = (
    10,
    338,
    297,
    332,
    284,
    251,
    389,
    356,
    454,
    323,
    361,
    288,
    397,
    365,
    379,
    378,
    400,
    377,
    152,
    148,
    176,
    149,
    150,
    136,
    172,
    58,
    132,
    93,
    234,
    127,
    162,
    21,
    54,
    103,
    67,
    109,
)
#: Side of the aligned face crop used for SSIM, PSNR and sharpness.
CROP = 128

CURVES = ("aperture", "openness", "roll", "yaw", "pitch", "x", "y", "scale", "ssim", "psnr", "sharpness", "difference")


@dataclass
class Curves:
    """Per-frame measurements of a video (NaN where not measured)."""

    fps: float
    size: tuple[int, int]
    n_frames: int
    values: dict[str, np.ndarray]
    boxes: np.ndarray  # (N, 4) face-oval boxes in pixels, NaN where no face
    reference: str
    reference_sharpness: float = float("nan")
    warnings: list[str] = field(default_factory=list)
    still: list[tuple[int, int]] = field(default_factory=list)  # stretches of an unchanging picture

    def __getitem__(self, key: str) -> np.ndarray:
        return self.values[key]

    @property
    def face_found(self) -> np.ndarray:
        return np.isfinite(self.values["aperture"])


def read_frames(path: str | os.PathLike) -> tuple[float, Iterator[np.ndarray]]:
    """The frame rate and an iterator over the RGB frames of a video file.

    Raises:
        VideoError: missing, unreadable, or without a video stream.
    """
    try:
        import av
    except ImportError as exc:
        from ..errors import MissingDependencyError

        raise MissingDependencyError("av", "mp4", "reading videos") from exc
    if not os.path.isfile(path):
        raise VideoError(f"video file not found: {path}. Check the path")
    try:
        container = av.open(os.fspath(path))
    except Exception as exc:  # PyAV raises many error types for unreadable files
        raise VideoError(f"{path} is not a readable video ({exc}); give an .mp4, .webm or .mov file") from exc
    if not container.streams.video:
        container.close()
        raise VideoError(f"{path} has no video stream")
    stream = container.streams.video[0]
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    fps = float(rate) if rate else 25.0

    def frames() -> Iterator[np.ndarray]:
        try:
            for frame in container.decode(stream):
                yield frame.to_ndarray(format="rgb24")
        except Exception as exc:  # a damaged stream: stop at the damage, say so
            log.warning("decoding %s stopped early: %s", path, exc)
        finally:
            container.close()

    return fps, frames()


class FaceTracker:
    """The 478-point face mesh of one face per frame, through the face wing's
    :class:`~talkinghead.face.landmarks.MeshLandmarks` (mediapipe, or LiteRT without mediapipe).

    Faces are detected in every frame (full-range, short-range, padded and tiled passes), the
    largest is measured.
    """

    def __init__(self, backend: str = "auto") -> None:
        from ..face.landmarks import MeshLandmarks

        self.landmarks = MeshLandmarks(backend, max_faces=1)

    def __call__(self, image: np.ndarray) -> np.ndarray | None:
        from ..face.mediapipe_mesh import MESH_CROP
        from ..values import Face

        image = np.ascontiguousarray(image)
        h, w = image.shape[:2]
        # First the whole frame (a square around it), where the mesh finds the face by itself: its
        # points are the steadiest there. Then the detector's face, for small faces in large frames.
        half = max(w, h) / MESH_CROP / 2
        whole = Face((w / 2 - half, h / 2 - half, w / 2 + half, h / 2 + half))
        pts = self.landmarks.backend.mesh(image, whole)
        if pts is None:
            faces = self.landmarks.faces(image)
            pts = faces[0].landmarks if faces else None
        return np.asarray(pts, np.float64) if pts is not None and len(pts) >= 478 else None

    def close(self) -> None:
        self.landmarks.close()


def face_features(pts: np.ndarray) -> dict[str, float]:
    """Aperture, openness, roll and the nose offsets of one frame's 478 points (see the module doc)."""
    a, b = pts[IRIS_A], pts[IRIS_B]
    d = float(np.linalg.norm(b - a))
    if d <= 0:
        return {}
    axis = (b - a) / d
    perp = np.array([-axis[1], axis[0]])
    mid = (a + b) / 2
    nose = (pts[NOSE_TIP] - mid) / d

    def eye(top: int, bottom: int, left: int, right: int) -> float:
        width = np.linalg.norm(pts[right] - pts[left])
        return float(np.linalg.norm(pts[top] - pts[bottom]) / width) if width > 0 else float("nan")

    return {
        "aperture": float(np.linalg.norm(pts[LIP_UPPER] - pts[LIP_LOWER]) / d),
        "openness": float(np.nanmean([eye(*EYE_A), eye(*EYE_B)])),
        "roll": float(np.degrees(np.arctan2(axis[1], axis[0]))),
        "yaw": float(nose @ axis),
        "pitch": float(nose @ perp),
        "iod": d,
        "cx": float(pts[:, 0].mean()),
        "cy": float(pts[:, 1].mean()),
    }


class _Aligner:
    """Maps a frame's face onto the reference face and crops the reference face box."""

    def __init__(self, reference: np.ndarray, pts: np.ndarray) -> None:
        import cv2

        self.ref_pts = pts[list(STABLE)].astype(np.float32)
        oval = pts[list(FACE_OVAL)]
        lo, hi = oval.min(axis=0), oval.max(axis=0)
        side = float(max(hi - lo)) * 1.05
        centre = (lo + hi) / 2
        s = CROP / side
        self.to_crop = np.array([[s, 0, CROP / 2 - s * centre[0]], [0, s, CROP / 2 - s * centre[1]], [0, 0, 1]])
        self.crop = self.grey(reference, np.eye(3))
        self.sharpness = laplacian_variance(self.crop)
        self._cv2 = cv2

    def grey(self, image: np.ndarray, m: np.ndarray) -> np.ndarray:
        import cv2

        full = self.to_crop @ m
        scale = float(np.sqrt(abs(np.linalg.det(full[:2, :2]))))
        if scale < 0.9:  # shrink with an area filter first: warping alone would alias (false sharpness)
            h, w = image.shape[:2]
            image = cv2.resize(
                image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA
            )
            full = full @ np.diag([w / image.shape[1], h / image.shape[0], 1.0])
        out = cv2.warpAffine(image, full[:2], (CROP, CROP), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        return cv2.cvtColor(out, cv2.COLOR_RGB2GRAY)

    def measure(self, image: np.ndarray, pts: np.ndarray) -> tuple[float, float, float]:
        m, _ = self._cv2.estimateAffinePartial2D(pts[list(STABLE)].astype(np.float32), self.ref_pts)
        if m is None:
            return float("nan"), float("nan"), float("nan")
        crop = self.grey(image, np.vstack([m, [0, 0, 1]]))
        return ssim(crop, self.crop), psnr(crop, self.crop), laplacian_variance(crop)


def measure_frames(
    frames: Iterator[np.ndarray],
    fps: float,
    *,
    reference: np.ndarray | None = None,
    reference_name: str = "",
    progress: Callable[[int], None] | None = None,
) -> Curves:
    """Measure every frame (see the module doc). ``reference``: the portrait (default: the first face seen).

    Raises:
        NoFaceError: no face in the reference portrait.
    """
    tracker = FaceTracker()
    still = StillTracker()
    aligner: _Aligner | None = None
    rows: list[dict[str, float]] = []
    boxes: list[tuple[float, float, float, float]] = []
    size = (0, 0)
    warnings: list[str] = []
    try:
        ref_pts = None
        if reference is not None:
            ref_pts = tracker(reference)
            if ref_pts is None:
                raise NoFaceError(f"no face was found in the reference {reference_name or 'portrait'}")
        previous = None
        first = None
        for i, frame in enumerate(frames):
            size = (frame.shape[1], frame.shape[0])
            row = {k: float("nan") for k in CURVES}
            cells = mosaic(frame)
            if previous is not None and previous.shape == cells.shape:
                row["difference"] = frame_difference(previous, cells)
            previous = cells
            still.push(cells)
            pts = tracker(frame)
            if pts is not None:
                f = face_features(pts)
                if f:
                    if first is None:
                        first = f
                    if aligner is None:
                        if ref_pts is not None:
                            aligner = _Aligner(*_same_scale(reference, ref_pts, f["iod"]))
                        else:
                            aligner = _Aligner(frame, pts)
                            reference_name = f"frame {i} of the video"
                    row.update({k: f[k] for k in ("aperture", "openness", "roll", "yaw", "pitch")})
                    row["x"] = (f["cx"] - first["cx"]) / first["iod"]
                    row["y"] = (f["cy"] - first["cy"]) / first["iod"]
                    row["scale"] = f["iod"] / first["iod"]
                    row["ssim"], row["psnr"], row["sharpness"] = aligner.measure(frame, pts)
                    boxes.append(_oval_box(pts))
                else:
                    boxes.append((np.nan,) * 4)
            else:
                boxes.append((np.nan,) * 4)
            rows.append(row)
            if progress is not None and (i + 1) % 25 == 0:
                progress(i + 1)
    finally:
        tracker.close()
    if not rows:
        raise VideoError("the video has no frames")
    values = {k: np.array([r[k] for r in rows], np.float64) for k in CURVES}
    found = np.isfinite(values["aperture"]).mean()
    if found < 0.9:
        warnings.append(f"a face was measured in only {found:.0%} of the frames; face metrics cover those frames")
    return Curves(
        fps=fps,
        size=size,
        n_frames=len(rows),
        values=values,
        boxes=np.array(boxes, np.float64).reshape(-1, 4),
        reference=reference_name,
        reference_sharpness=aligner.sharpness if aligner is not None else float("nan"),
        warnings=warnings,
        still=still.finish(),
    )


def _same_scale(image: np.ndarray, pts: np.ndarray, iod: float) -> tuple[np.ndarray, np.ndarray]:
    """The reference shrunk (area filter) so its face is the size of the video's face.

    Sharpness and SSIM then compare like with like: a portrait larger than the video is not
    "sharper" merely for having more pixels.
    """
    import cv2

    ref_iod = float(np.linalg.norm(pts[IRIS_B] - pts[IRIS_A]))
    scale = iod / ref_iod if ref_iod > 0 else 1.0
    if scale >= 1.0:
        return image, pts
    h, w = image.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return small, pts * np.array([size[0] / w, size[1] / h])


def _oval_box(pts: np.ndarray) -> tuple[float, float, float, float]:
    oval = pts[list(FACE_OVAL)]
    lo, hi = oval.min(axis=0), oval.max(axis=0)
    return float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])


def frame_landmarks(frames: np.ndarray) -> np.ndarray:
    """(N, 478, 2) face-mesh points in pixels of each frame (NaN where no face), as :class:`FaceTracker` finds them."""
    tracker = FaceTracker()
    out = np.full((len(frames), 478, 2), np.nan)
    try:
        for i, frame in enumerate(frames):
            pts = tracker(frame)
            if pts is not None:
                out[i] = pts[:478]
    finally:
        tracker.close()
    return out


def lip_apertures(frames: np.ndarray) -> np.ndarray:
    """Mouth aperture (inner-lip gap over inter-ocular distance) of each frame; NaN where no face."""
    pts = frame_landmarks(frames)
    iod = np.linalg.norm(pts[:, IRIS_B] - pts[:, IRIS_A], axis=1)
    return np.linalg.norm(pts[:, LIP_UPPER] - pts[:, LIP_LOWER], axis=1) / iod
