"""Finding faces that a single detector pass misses, with any detector.

A detector is anything with ``detect(image, model=...) -> list[Face]`` (:class:`~talkinghead.face.mesh.MeshBackend`;
RetinaFace's :class:`~talkinghead.face.detector.FaceDetector` takes no ``model`` and is wrapped by
:func:`as_detect`). :func:`find_faces` tries, in order, until one finds a face:

1. the full-range model on the whole image (the usual portrait; whole-image passes see a copy of at most
   :data:`WHOLE_IMAGE_SIDE` px, far more than the detectors' 128-192 px inputs);
2. the short-range model (close-ups);
3. both on the image padded with a black margin of half its longer side on every edge (a face that
   touches all four edges: detectors are trained on faces with some surroundings);
4. all of the above on a contrast-normalised copy (gamma towards mid-grey, then CLAHE on lightness:
   blown-out or very dark portraits);
5. (before step 4) overlapping tiles at two scales (1536 and 512 px, a quarter overlap) on images larger than the
   tile: a ~100 px face in a 24-megapixel photo is 4 px at the detector's 192 px input, but a
   third of a 512 px tile. Tiles are merged by non-maximum suppression.

Boxes and keypoints are always in the pixels of the image passed in; boxes are clipped to it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import numpy as np

from ..values import Face

log = logging.getLogger(__name__)

__all__ = ["Detect", "find_faces", "normalise_contrast", "as_detect", "TILE_SIZES"]

Detect = Callable[..., list[Face]]
"""``detect(image, model="full" | "short") -> list[Face]``."""

#: Tile sides of the multi-scale search, largest first (only those smaller than the image are used).
TILE_SIZES = (1536, 512)
#: Margin added on every edge for the padded pass, as a fraction of the image's longer side.
PAD_FRACTION = 0.5
#: Whole-image passes run on a copy downscaled to this long side (tiles use full resolution).
WHOLE_IMAGE_SIDE = 1024


def as_detect(detector) -> Detect:
    """Adapt a detector without a ``model`` argument (e.g. RetinaFace) to :data:`Detect`."""

    def detect(image: np.ndarray, model: str = "full") -> list[Face]:
        return [] if model == "short" else list(detector.detect(image))

    return detect


def normalise_contrast(image: np.ndarray) -> np.ndarray:
    """A copy with its median lightness moved towards mid-grey (gamma) and local contrast equalised (CLAHE)."""
    import cv2

    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB)
    lum = lab[:, :, 0]
    med = float(np.clip(np.median(lum) / 255.0, 0.02, 0.98))
    gamma = float(np.clip(np.log(0.45) / np.log(med), 0.3, 6.0))
    table = np.clip(255.0 * (np.arange(256) / 255.0) ** gamma + 0.5, 0, 255).astype(np.uint8)
    lum = cv2.LUT(lum, table)
    lab[:, :, 0] = cv2.createCLAHE(clipLimit=3.0, tileGridSize=(8, 8)).apply(lum)
    return cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)


def _shift(faces: Sequence[Face], dx: float, dy: float, scale: float, w: int, h: int) -> list[Face]:
    out = []
    for f in faces:
        x1, y1, x2, y2 = f.box
        box = ((x1 + dx) * scale, (y1 + dy) * scale, (x2 + dx) * scale, (y2 + dy) * scale)
        box = (max(0.0, box[0]), max(0.0, box[1]), min(float(w), box[2]), min(float(h), box[3]))
        if box[2] - box[0] < 2 or box[3] - box[1] < 2:
            continue
        lm = None if f.landmarks is None else (np.asarray(f.landmarks, np.float64) + (dx, dy)) * scale
        out.append(Face(box, f.score, lm))
    return out


def _padded(detect: Detect, image: np.ndarray, model: str) -> list[Face]:
    import cv2

    h, w = image.shape[:2]
    p = int(round(PAD_FRACTION * max(h, w)))
    big = cv2.copyMakeBorder(image, p, p, p, p, cv2.BORDER_CONSTANT, value=(0, 0, 0))
    return _shift(detect(big, model=model), -p, -p, 1.0, w, h)


def _iou(a: tuple, b: tuple) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _merge(faces: list[Face], iou: float = 0.3) -> list[Face]:
    kept: list[Face] = []
    for f in sorted(faces, key=lambda f: -f.score):
        if all(_iou(f.box, k.box) <= iou for k in kept):
            kept.append(f)
    return kept


def _tiles(detect: Detect, image: np.ndarray, tile: int) -> list[Face]:
    h, w = image.shape[:2]
    step = max(1, int(tile * 0.75))
    ys = list(range(0, max(1, h - tile) + 1, step))
    xs = list(range(0, max(1, w - tile) + 1, step))
    if ys[-1] + tile < h:
        ys.append(h - tile)
    if xs[-1] + tile < w:
        xs.append(w - tile)
    found: list[Face] = []
    for y in ys:
        for x in xs:
            sub = np.ascontiguousarray(image[y:y + tile, x:x + tile])
            # faces cut by the tile edge are found whole by the neighbouring tile (a quarter overlap)
            found.extend(_shift(detect(sub, model="full"), x, y, 1.0, w, h))
    return _merge(found)


def find_faces(detect: Detect, image: np.ndarray, *, tiles: bool = True) -> list[Face]:
    """Faces in an RGB uint8 image by the strategies of the module docstring, largest first.

    Args:
        detect: The detector (:data:`Detect`).
        image: (H, W, 3) uint8 RGB.
        tiles: Allow the multi-scale tile search on large images.
    """
    import cv2

    h, w = image.shape[:2]
    k = min(1.0, WHOLE_IMAGE_SIDE / max(h, w))
    small = image if k == 1.0 else cv2.resize(image, (max(1, round(w * k)), max(1, round(h * k))),
                                               interpolation=cv2.INTER_AREA)
    cache: dict[str, np.ndarray] = {}

    def normalised() -> np.ndarray:
        if "n" not in cache:
            cache["n"] = normalise_contrast(small)
        return cache["n"]

    def whole(run: Callable[[np.ndarray], list[Face]], source: Callable[[], np.ndarray]) -> list[Face]:
        found = run(source())
        return found if k == 1.0 else _shift(found, 0.0, 0.0, 1.0 / k, w, h)

    attempts: list[tuple[str, Callable[[], list[Face]]]] = []
    for label, source in (("", lambda: small), (" (contrast-normalised)", normalised)):
        attempts += [
            ("full-range" + label, lambda s=source: whole(lambda x: detect(x, model="full"), s)),
            ("short-range" + label, lambda s=source: whole(lambda x: detect(x, model="short"), s)),
            ("padded full-range" + label, lambda s=source: whole(lambda x: _padded(detect, x, "full"), s)),
            ("padded short-range" + label, lambda s=source: whole(lambda x: _padded(detect, x, "short"), s)),
        ]
        if tiles and not label:
            for t in TILE_SIZES:
                if max(h, w) > t * 1.25:
                    attempts.append((f"{t} px tiles", lambda t=t: _tiles(detect, image, t)))
    for label, attempt in attempts:
        faces = attempt()
        if faces:
            if label != "full-range":
                log.info("face found by the %s pass", label)
            return sorted(faces, key=lambda f: -f.area)
    return []


#: When downscaling a large portrait would leave its face smaller than this, frame the face instead.
MIN_FRAMED_FACE = 160
#: The framed crop is this many face sizes wide (at most the size limit, at least 256 px).
FRAME_FACES = 4.0


def frame_portrait(image: np.ndarray, max_size: int, detect: Detect | None) -> tuple[np.ndarray, tuple | None]:
    """Fit a portrait into ``max_size`` without shrinking its face away.

    Images whose long side is at most ``max_size`` are returned unchanged. Larger ones are searched for
    faces at full resolution (:func:`find_faces`, tiles included). If downscaling the whole image keeps
    the largest face at :data:`MIN_FRAMED_FACE` px or more (or no face is found, or ``detect`` is None),
    the whole image is downscaled as before. Otherwise the result is a square crop around the face,
    :data:`FRAME_FACES` face sizes wide (256 px to ``max_size``), taken at full resolution and
    downscaled only if still larger than ``max_size``: the video then shows that crop.

    Returns:
        (image, crop box (x1, y1, x2, y2) in the original's pixels, or None when the whole image was kept).
    """
    import cv2

    h, w = image.shape[:2]
    if max(h, w) <= max_size:
        return image, None
    scale = max_size / max(h, w)

    def whole() -> tuple[np.ndarray, None]:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        return np.ascontiguousarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA)), None

    faces = find_faces(detect, image) if detect is not None else []
    if not faces:
        return whole()
    face = max(faces, key=lambda f: f.area)
    side_face = max(face.width, face.height)
    if side_face * scale >= MIN_FRAMED_FACE:
        return whole()
    side = int(round(min(max(FRAME_FACES * side_face, 256), max_size, w, h)))
    cx, cy = (face.box[0] + face.box[2]) / 2, (face.box[1] + face.box[3]) / 2
    x1 = int(round(min(max(cx - side / 2, 0), w - side)))
    y1 = int(round(min(max(cy - side / 2 - 0.1 * side_face, 0), h - side)))  # a little headroom
    crop = np.ascontiguousarray(image[y1:y1 + side, x1:x1 + side])
    log.info("portrait %dx%d: its %d px face would be %d px after downscaling to %d; using a %d px crop "
             "around the face instead", w, h, side_face, side_face * scale, max_size, side)
    return crop, (x1, y1, x1 + side, y1 + side)
