"""FaceDetector public API: checkpoint layouts, missing/corrupt weights, bad input, filters."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("cv2")

from talkinghead.errors import ImageError, ModelLoadError, WeightsMissingError  # noqa: E402
from talkinghead.testing import fill  # noqa: E402
from talkinghead.face.detector import FaceDetector, rows_to_faces  # noqa: E402
from talkinghead.face.parsenet import ParseNet, load_parsenet  # noqa: E402
from talkinghead.face.retinaface import RetinaFace, load_retinaface  # noqa: E402
from talkinghead.values import Face  # noqa: E402

ASSET = Path(__file__).parents[1] / "assets" / "portrait_astronaut.png"


@pytest.fixture(scope="module")
def state():
    return fill.fill_like(RetinaFace())


def _face_everywhere(state, face_logit):
    """A state dict whose class heads output a constant face logit (bias only)."""
    s = dict(state)
    for i in range(3):
        s[f"ClassHead.{i}.conv1x1.weight"] = torch.zeros_like(s[f"ClassHead.{i}.conv1x1.weight"])
        s[f"ClassHead.{i}.conv1x1.bias"] = torch.tensor([0.0, face_logit] * 2)
    return s


@pytest.mark.slow
@pytest.mark.parametrize("prefix", [False, True])
@pytest.mark.parametrize("legacy", [False, True])
def test_official_layouts_load(tmp_path, state, prefix, legacy):
    path = tmp_path / "detection_mobilenet0.25_Final.pth"
    fill.save_flat_checkpoint(state, path, module_prefix=prefix, legacy_format=legacy)
    det = FaceDetector(weights_path=path, conf=0.6)
    det.load()
    img = np.zeros((64, 96, 3), np.uint8)
    ref = FaceDetector.from_state_dict(state, conf=0.6)
    np.testing.assert_array_equal(det.detect_rows(img), ref.detect_rows(img))


def test_missing_weights_names_file_url_and_place(tmp_path):
    det = FaceDetector(weights_path=tmp_path / "nope.pth")
    with pytest.raises(WeightsMissingError) as ei:
        det.load()
    msg = str(ei.value)
    assert "detection_mobilenet0.25_Final.pth" in msg
    assert "https://github.com/xinntao/facexlib/releases/download/v0.1.0/detection_mobilenet0.25_Final.pth" in msg
    assert str(tmp_path / "nope.pth") in msg


@pytest.mark.parametrize("payload", [b"", b"not a checkpoint at all", "truncated"])
def test_corrupt_checkpoint(tmp_path, state, payload):
    path = tmp_path / "detection_mobilenet0.25_Final.pth"
    if payload == "truncated":
        raw = fill.checkpoint_bytes(state)
        payload = raw[: len(raw) // 2]
    path.write_bytes(payload)
    with pytest.raises(ModelLoadError) as ei:
        FaceDetector(weights_path=path).load()
    assert not isinstance(ei.value, WeightsMissingError)
    assert "download it again" in str(ei.value)


@pytest.mark.slow
def test_wrong_architecture_checkpoint(tmp_path, state):
    path = tmp_path / "x.pth"
    fill.save_flat_checkpoint(state, path)
    with pytest.raises(ModelLoadError, match="does not match"):
        FaceDetector(weights_path=path, model="resnet50").load()
    with pytest.raises(ModelLoadError, match="does not match"):
        load_parsenet(io.BytesIO(fill.checkpoint_bytes(state)))
    bad = dict(state)
    bad.pop("fpn.merge1.0.weight")
    with pytest.raises(ModelLoadError):
        load_retinaface(bad)


@pytest.mark.slow
def test_parsenet_checkpoint_roundtrip(tmp_path):
    state = fill.fill_like(ParseNet())
    path = tmp_path / "parsing_parsenet.pth"
    fill.save_flat_checkpoint(state, path)
    net = load_parsenet(path)
    assert torch.equal(net.state_dict()["out_mask_conv.conv2d.bias"], state["out_mask_conv.conv2d.bias"])


def test_no_face_gives_empty_list(state):
    det = FaceDetector.from_state_dict(_face_everywhere(state, -8.0))
    assert det.detect(np.full((96, 128, 3), 127, np.uint8)) == []
    assert det.detect_batch(np.zeros((2, 64, 64, 3), np.uint8)) == [[], []]


def test_detections_become_faces(state):
    det = FaceDetector.from_state_dict(_face_everywhere(state, 8.0), conf=0.97, eye_dist_threshold=None)
    faces = det.detect(np.full((64, 64, 3), 90, np.uint8))
    assert faces and all(isinstance(f, Face) for f in faces)
    assert faces[0].landmarks.shape == (5, 2) and faces[0].score > 0.97
    scores = [f.score for f in faces]
    assert scores == sorted(scores, reverse=True)
    batch = det.detect_batch(np.stack([np.full((64, 64, 3), 90, np.uint8)] * 3))
    assert len(batch) == 3 and [len(b) for b in batch] == [len(faces)] * 3


def test_eye_distance_filter_drops_tiny_faces():
    row = np.zeros((2, 15), np.float32)
    row[0, :5] = [0, 0, 40, 40, 0.99]
    row[0, 5:9] = [10, 15, 30, 15]  # eyes 20 px apart
    row[1, :5] = [50, 50, 54, 54, 0.98]
    row[1, 5:9] = [51, 52, 53, 52]  # eyes 2 px apart: below the 5 px floor
    faces = rows_to_faces(row, 5.0)
    assert len(faces) == 1 and faces[0].box == (0.0, 0.0, 40.0, 40.0)
    assert len(rows_to_faces(row, None)) == 2


@pytest.mark.parametrize("bad", [np.zeros((10, 10), np.uint8), np.zeros((10, 10, 4), np.uint8),
                                 np.zeros((10, 10, 3), np.float32), np.zeros((0, 10, 3), np.uint8)])
def test_bad_images(state, bad):
    det = FaceDetector.from_state_dict(state)
    with pytest.raises(ImageError):
        det.detect(bad)


@pytest.mark.real_weights
def test_real_weights_find_the_astronaut():
    import os

    import cv2

    if os.environ.get("TALKINGHEAD_REAL_WEIGHTS") != "1":
        pytest.skip("set TALKINGHEAD_REAL_WEIGHTS=1 (and download retinaface-mobilenet0.25) to run")
    det = FaceDetector()
    try:
        det.load()
    except WeightsMissingError as exc:
        pytest.skip(str(exc))
    img = cv2.cvtColor(cv2.imread(str(ASSET)), cv2.COLOR_BGR2RGB)
    faces = det.detect(img)
    assert len(faces) == 1
    lm = faces[0].landmarks
    assert lm[0, 0] < lm[1, 0] and lm[2, 1] < lm[3, 1]
