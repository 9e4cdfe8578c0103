"""Faces that must be found (issue 8 §7), each built from the astronaut portrait.

* a low-resolution greyscale headshot, cropped to the face box and upscaled to 448²: the face
  touches all four edges;
* an upscaled forehead-to-chin crop (448²);
* a blown-out portrait (exposure ×1.8 + 50: half the image and ~80 % of the face pixels saturated);
* a ~100 px face in a 6000×4000 (24-megapixel) photo.

A single full-range pass (what the viseme animator used to run) misses the first, the third and the
fourth; :func:`talkinghead.face.detection.find_faces` finds all of them with either mesh backend, and
the Avatar animates each: the mouth moves inside the face.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from talkinghead import Avatar, ModelCache  # noqa: E402
from talkinghead.face.landmarks import MeshLandmarks  # noqa: E402
from talkinghead.testing import FakeTTS, MemoryWriter  # noqa: E402

ASTRONAUT = Path(__file__).resolve().parents[1] / "assets" / "portrait_astronaut.png"


def _base() -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(ASTRONAUT)), cv2.COLOR_BGR2RGB)


def closeup_grey() -> np.ndarray:
    g = cv2.cvtColor(_base()[78:178, 178:278], cv2.COLOR_RGB2GRAY)  # the face box, edge to edge
    g = cv2.resize(cv2.resize(g, (56, 56), interpolation=cv2.INTER_AREA), (448, 448), interpolation=cv2.INTER_CUBIC)
    return np.ascontiguousarray(np.repeat(g[:, :, None], 3, axis=2))


def closeup_crop() -> np.ndarray:
    return cv2.resize(_base()[70:190, 168:288], (448, 448), interpolation=cv2.INTER_CUBIC)


def blown_out() -> np.ndarray:
    return np.clip(_base().astype(np.float32) * 1.8 + 50, 0, 255).astype(np.uint8)


HUGE_AT = (4100, 2600)  # where the astronaut (490 px, face ~100 px) sits in the big photo


def huge_photo() -> np.ndarray:
    rng = np.random.default_rng(0)
    h, w = 4000, 6000
    yy, xx = np.mgrid[0:h:8, 0:w:8]
    bg = np.stack([xx / w * 120 + 60, yy / h * 100 + 80, np.full(xx.shape, 140.0)], -1).astype(np.uint8)
    bg = cv2.resize(bg, (w, h), interpolation=cv2.INTER_LINEAR)
    bg = np.clip(bg.astype(np.int16) + rng.integers(-12, 13, bg.shape, dtype=np.int16), 0, 255).astype(np.uint8)
    x, y = HUGE_AT
    bg[y:y + 490, x:x + 490] = cv2.resize(_base(), (490, 490), interpolation=cv2.INTER_AREA)
    return bg


CASES = {"closeup_grey": closeup_grey, "closeup_crop": closeup_crop, "blown_out": blown_out, "huge": huge_photo}


@pytest.fixture(scope="module", params=["mediapipe", "litert"])
def finder(request):
    if request.param == "mediapipe":
        pytest.importorskip("mediapipe")
    else:
        pytest.importorskip("ai_edge_litert")
    f = MeshLandmarks(request.param)
    try:
        f.load()
    except Exception as exc:  # noqa: BLE001 - a backend that cannot run here
        pytest.skip(f"{request.param}: {exc}")
    yield f
    f.close()


def _true_box(name: str, shape) -> tuple[float, float, float, float]:
    """Where the face is, by construction (the astronaut's face box, mapped through the edit)."""
    x1, y1, x2, y2 = 178.0, 78.0, 278.0, 178.0
    if name == "closeup_grey":
        return (0.0, 0.0, float(shape[1]), float(shape[0]))
    if name == "closeup_crop":
        k = 448 / 120
        return ((x1 - 168) * k, (y1 - 70) * k, (x2 - 168) * k, (y2 - 70) * k)
    if name == "huge":
        k, (ox, oy) = 490 / 512, HUGE_AT
        return (ox + x1 * k, oy + y1 * k, ox + x2 * k, oy + y2 * k)
    return (x1, y1, x2, y2)


def _overlap(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    return ix * iy / ((b[2] - b[0]) * (b[3] - b[1]))


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CASES))
def test_hostile_face_is_found_and_measured(finder, name):
    image = CASES[name]()
    face = finder.find(image)
    truth = _true_box(name, image.shape)
    assert _overlap(face.box, truth) > 0.5, (face.box, truth)
    pts = face.landmarks
    assert pts.shape[0] >= 468
    # the mesh lies on the face: mouth below the eyes, inside the true face box (with a margin)
    from talkinghead.face import mesh as M

    mouth = pts[list(M.LIPS_OUTER_UPPER + M.LIPS_OUTER_LOWER)].mean(0)
    eyes = pts[list(M.EYE_A_UPPER + M.EYE_B_UPPER)].mean(0)
    tw, th = truth[2] - truth[0], truth[3] - truth[1]
    assert eyes[1] < mouth[1]
    assert truth[0] - 0.2 * tw < mouth[0] < truth[2] + 0.2 * tw and truth[1] < mouth[1] < truth[3] + 0.3 * th


@pytest.mark.slow
def test_single_full_range_pass_misses_them(finder):
    """The evidence for the strategies: one whole-image full-range pass finds nothing in these."""
    missed = [n for n in ("closeup_grey", "huge") if not finder.backend.detect(CASES[n]())]
    assert missed == ["closeup_grey", "huge"]


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CASES))
def test_hostile_face_is_animated(name):
    pytest.importorskip("mediapipe")
    image = CASES[name]()
    writer = MemoryWriter()
    av = Avatar(image, tts=FakeTTS(), animator=("viseme", {"blink_rate": 0, "head_motion": 0}), writer=writer,
                cache=ModelCache(), fps=10)
    av.say("hello there")
    frames = writer.frames
    portrait = av.portrait.image
    assert frames.shape[1:] == portrait.shape and max(portrait.shape[:2]) <= 1024
    face = av._prepared().face
    moved = np.abs(frames.astype(np.int16) - portrait).max(axis=(0, 3)) > 12
    assert moved.sum() > 30, "the mouth never moved"
    ys, xs = np.nonzero(moved)
    x1, y1, x2, y2 = face.box
    w, h = x2 - x1, y2 - y1
    inside = (xs >= x1 - 0.2 * w) & (xs <= x2 + 0.2 * w) & (ys >= y1 - 0.2 * h) & (ys <= y2 + 0.35 * h)
    assert inside.mean() > 0.95
    if name == "huge":
        # framed around the face at full resolution, not shrunk to 1024 px wide (where it would be 17 px)
        assert portrait.shape[0] == portrait.shape[1] and 256 <= portrait.shape[0] <= 1024 and min(w, h) > 60
