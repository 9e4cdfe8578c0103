"""RetinaFace port vs facexlib 0.3.0 run on the deterministic fill (fixtures/face/retinaface_mnet.npz)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
cv2 = pytest.importorskip("cv2")

from talkinghead.face import retinaface as rf  # noqa: E402
from talkinghead.testing.fill import fill_like  # noqa: E402

FIX = Path(__file__).parent / "fixtures" / "face"
ASSET = Path(__file__).parents[1] / "assets" / "portrait_astronaut.png"


@pytest.fixture(scope="module")
def ref():
    return np.load(FIX / "retinaface_mnet.npz")


@pytest.fixture(scope="module")
def net():
    m = rf.RetinaFace("mobilenet0.25")
    return rf.load_retinaface(fill_like(m))


def test_state_dict_matches_manifest_layout():
    import json

    keys = json.loads((FIX / "fill_check.json").read_text())["detection_mobilenet0.25_Final"]
    sd = rf.RetinaFace().state_dict()
    assert list(sd) == list(keys)
    assert all(list(sd[k].shape) == v["shape"] for k, v in keys.items())


@pytest.mark.slow
@pytest.mark.parametrize("suffix,key", [("", "input_small_bgr"), ("_odd", "input_odd_bgr")])
def test_raw_heads(net, ref, suffix, key):
    with torch.no_grad():
        loc, conf, ldm = net(net.preprocess(ref[key]))
    np.testing.assert_allclose(loc[0].numpy(), ref["loc" + suffix], atol=1e-4, rtol=0)
    np.testing.assert_allclose(ldm[0].numpy(), ref["landms" + suffix], atol=1e-4, rtol=0)
    np.testing.assert_allclose(conf[0].numpy(), ref["conf" + suffix], atol=1e-5, rtol=0)


def _images(ref):
    portrait = cv2.imread(str(ASSET))
    return {"portrait": portrait, "two": ref["two_rgb"][:, :, ::-1].copy(), "small": ref["input_small_bgr"],
            "odd": ref["input_odd_bgr"]}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["portrait", "two", "small", "odd"])
@pytest.mark.parametrize("thr", [60, 80])
def test_detect_faces_rows(net, ref, name, thr):
    img = _images(ref)[name]
    got = rf.detect_faces(net, img, thr / 100, 0.4)
    want = ref[f"rows_{name}_{thr}"]
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)  # same rows in the same order


@pytest.mark.slow
def test_batched_equals_single(net, ref):
    frames = np.stack([ref["input_small_bgr"], ref["input_small_bgr"][::-1].copy(), ref["input_small_bgr"]])
    batched = rf.detect_faces_batch(net, frames, 0.6, 0.4, batch_size=2)
    assert len(batched) == 3
    for f, rows in zip(frames, batched):
        np.testing.assert_allclose(rows, rf.detect_faces(net, f, 0.6, 0.4), atol=1e-4)


def test_priors_cached_and_counted():
    p = rf.priors_for(512, 512)
    assert p.shape == (10752, 4) and rf.priors_for(320, 320).shape == (4200, 4)
    assert rf._priors_np(512, 512) is rf._priors_np(512, 512)
    # first two priors: cell (0, 0) of stride 8, min sizes 16 and 32
    np.testing.assert_allclose(p[:2].numpy(), [[4 / 512, 4 / 512, 16 / 512, 16 / 512],
                                                [4 / 512, 4 / 512, 32 / 512, 32 / 512]], rtol=1e-6)


def test_nms_semantics():
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [20, 20, 30, 30], [0, 0, 10, 10.0]], np.float32)
    # IoU(0,1) = 90/110 = 0.818 > 0.4 -> dropped; box 3 identical -> dropped; box 2 disjoint kept
    assert rf.nms(boxes, 0.4).tolist() == [0, 2]
    assert rf.nms(boxes, 0.9).tolist() == [0, 1, 2]
    assert rf.nms(np.zeros((0, 4), np.float32), 0.4).tolist() == []


@pytest.mark.slow
def test_resnet50_layout_loads_its_own_fill():
    net = rf.RetinaFace("resnet50")
    sd = net.state_dict()
    assert "body.layer4.2.bn3.running_var" in sd and "body.fc.weight" not in sd
    assert sum(v.numel() for k, v in net.named_parameters()) == 27_293_600
    with torch.no_grad():
        loc, conf, ldm = net(torch.zeros(1, 3, 64, 64))
    assert loc.shape == (1, rf.priors_for(64, 64).shape[0], 4) and ldm.shape[-1] == 10
