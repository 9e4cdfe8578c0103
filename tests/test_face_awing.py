"""AWing FAN landmarks: architecture vs the upstream manifest, equivalence with upstream facexlib on the
deterministic fill, loading/error paths, the 98 -> 68 mapping and the SadTalker landmark source.

Reference numbers: tests/fixtures/face/awing_ref.npz, produced by
tests/fixtures/face/produce/make_awing_refs.py (upstream facexlib ``awing_arch.FAN`` run outside the repo).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
cv2 = pytest.importorskip("cv2")

from talkinghead.errors import ConfigError, ImageError, ModelLoadError, WeightsMissingError  # noqa: E402
from talkinghead.face.awing import (  # noqa: E402
    AWING_FILE,
    AWING_URL,
    AWingAligner,
    AWingFAN,
    AWingLandmarks,
    decode_heatmaps,
    get_landmarks,
    landmarks_98_to_68,
    load_awing,
    network_input,
)
from talkinghead.testing.fill import fill_tensors, spec_from_manifest  # noqa: E402

FIX = Path(__file__).parent / "fixtures" / "face"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def manifest() -> dict:
    return json.loads((FIX / "awing_manifest.json").read_text())


@pytest.fixture(scope="module")
def filled(manifest) -> dict:
    return fill_tensors(spec_from_manifest(manifest), rule="face")


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory, filled) -> Path:
    """The fill written in the release layout: ``{'state_dict': flat state dict}``."""
    path = tmp_path_factory.mktemp("awing") / AWING_FILE
    torch.save({"state_dict": filled}, path)
    return path


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The references were made with 1 torch thread; other thread counts reorder float32 sums."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def net(ckpt) -> AWingFAN:
    return load_awing(ckpt)


def _tol(ref: np.ndarray) -> float:
    """atol 1e-4, widened to float32 accumulation noise for the fill's ~1e3-1e4 heatmap values."""
    return max(1e-4, 2e-6 * float(np.abs(ref).max()))


@pytest.fixture(scope="module")
def ref() -> dict:
    return dict(np.load(FIX / "awing_ref.npz"))


@pytest.fixture(scope="module")
def rgb() -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(ROOT / "assets" / "portrait_astronaut.png")), cv2.COLOR_BGR2RGB)


def test_state_dict_matches_upstream_manifest(manifest):
    sd = AWingFAN().state_dict()
    assert list(sd) == list(manifest["keys"])  # same names, same order
    for k, v in sd.items():
        assert list(v.shape) == manifest["keys"][k]["shape"], k
    assert manifest["num_keys"] == len(sd) == 1137


@pytest.mark.slow
def test_heatmaps_match_upstream(net, ref, rgb):
    x1, y1, x2, y2 = (int(v) for v in ref["box"])
    with torch.no_grad():
        outs = net(network_input(rgb[y1:y2, x1:x2]))
    assert len(outs) == 4 and outs[-1].shape == (1, 99, 64, 64)
    last = outs[-1][0].numpy()
    np.testing.assert_allclose(last[ref["heat_channels"]], ref["heat"], rtol=0, atol=_tol(ref["heat"]))
    np.testing.assert_allclose(last.reshape(99, -1).sum(1), ref["heat_sum"], rtol=1e-5, atol=4096 * _tol(ref["heat"]))
    np.testing.assert_allclose(outs[0][0, :, 30, :].numpy(), ref["heat0_slice"], rtol=0,
                               atol=_tol(ref["heat0_slice"]))
    np.testing.assert_allclose(decode_heatmaps(outs[-1][:, :-1].numpy())[0], ref["points_heat"], atol=1e-3)


@pytest.mark.slow
def test_landmarks_match_upstream(net, ref, rgb):
    box = tuple(float(v) for v in ref["box"])
    lm98 = get_landmarks(net, rgb, box)
    assert lm98.shape == (98, 2)
    # upstream returns crop coordinates; SadTalker adds int(box[0]), int(box[1])
    np.testing.assert_allclose(lm98 - ref["box"][:2], ref["lm98"], atol=1e-3)
    np.testing.assert_allclose(landmarks_98_to_68(lm98 - ref["box"][:2]), ref["lm68"], atol=1e-3)


def test_98_to_68_mapping(ref):
    out = landmarks_98_to_68(ref["map_in"])
    assert out.shape == (68, 2) and out.dtype == np.float32
    np.testing.assert_allclose(out, ref["map_out"], atol=1e-5)
    with pytest.raises(ValueError):
        landmarks_98_to_68(np.zeros((68, 2)))


def test_decode_subpixel_and_edges():
    hm = np.zeros((1, 2, 8, 8), np.float32)
    hm[0, 0, 3, 4] = 5.0
    hm[0, 0, 3, 5] = 1.0  # right neighbour larger -> +0.25 x
    hm[0, 0, 2, 4] = 1.0  # upper neighbour larger -> -0.25 y
    hm[0, 1, 5, 2] = 3.0  # no neighbours -> no shift
    pts = decode_heatmaps(hm)[0]
    np.testing.assert_allclose(pts, [[4.75, 3.25], [2.5, 5.5]])
    # a point in the last row switches every point's lower neighbour to the map's last cell
    hm2 = hm.copy()
    hm2[0, 1] = 0
    hm2[0, 1, 7, 7] = 2.0
    hm2[0, 0, 4, 4] = 2.0  # the lower neighbour of point 0 is now ignored
    pts2 = decode_heatmaps(hm2)[0]
    assert pts2[0, 1] == pytest.approx(3.25)  # below = hm[.., 7, 7] = 0 < above = 1
    assert pts2[1].tolist() == [7.75, 7.75]  # right neighbour clamped to itself (2 > left 0), below = itself


@pytest.mark.slow
def test_loader_layouts(filled):
    flat = {f"module.{k}": v for k, v in filled.items()}
    buf = io.BytesIO()
    torch.save(flat, buf)
    buf.seek(0)
    m = load_awing(buf)
    assert not m.training
    assert torch.equal(m.l3.weight, filled["l3.weight"])


def test_missing_file_names_file_and_url(tmp_path):
    with pytest.raises(WeightsMissingError) as ei:
        load_awing(tmp_path / AWING_FILE)
    msg = str(ei.value)
    assert AWING_FILE in msg and AWING_URL in msg and "talkinghead weights download awing" in msg
    with pytest.raises(WeightsMissingError):
        AWingAligner(weights_path=tmp_path / "nope.pth").load()


@pytest.mark.slow
def test_corrupt_and_wrong_files(tmp_path, filled):
    bad = tmp_path / AWING_FILE
    bad.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ModelLoadError) as ei:
        load_awing(bad)
    assert not isinstance(ei.value, WeightsMissingError)
    wrong = dict(filled)
    wrong.pop("l3.bias")
    with pytest.raises(ModelLoadError, match="does not match"):
        load_awing({"state_dict": wrong})


class _StubDetector:
    """facexlib-style rows: x1, y1, x2, y2, score, 5 (x, y) points."""

    def __init__(self, rows):
        self.rows = np.asarray(rows, np.float32)
        self.seen = None

    def detect_rows(self, image):
        self.seen = image
        return self.rows


@pytest.mark.slow
def test_awing_landmark_source_plumbing(net, rgb, ref):
    aligner = AWingAligner()
    aligner._net = net
    rows = [[150.7, 80.2, 350.9, 330.4, 0.99] + [0] * 10, [600, 600, 700, 700, 0.98] + [0] * 10]
    det = _StubDetector(rows)
    src = AWingLandmarks(detector=det, aligner=aligner)
    faces = src.detect(rgb)
    assert len(faces) == 1  # the second box lies outside the image
    f = faces[0]
    assert f.landmarks.shape == (68, 2) and f.score == pytest.approx(0.99)
    assert f.box == pytest.approx((150.7, 80.2, 350.9, 330.4))
    # same ints as upstream: the box is truncated, points come back in image pixels
    np.testing.assert_allclose(f.landmarks - ref["box"][:2], ref["lm68"], atol=1e-3)
    np.testing.assert_array_equal(det.seen, rgb[..., ::-1])  # upstream feeds RetinaFace RGB as if BGR
    AWingLandmarks(detector=det, aligner=aligner, upstream_channels=False).detect(rgb)
    np.testing.assert_array_equal(det.seen, rgb)
    with pytest.raises(ImageError):
        src.detect(rgb[..., 0])


def test_awing_source_on_the_tiny_network(rgb):
    """The landmark source's plumbing (boxes in, 68 points in image pixels out) on the tiny AWing."""
    from talkinghead.testing import nets

    aligner = AWingAligner()
    aligner._net = nets.tiny_awing()
    rows = [[150.7, 80.2, 350.9, 330.4, 0.99] + [0] * 10, [600, 600, 700, 700, 0.98] + [0] * 10]
    faces = AWingLandmarks(detector=_StubDetector(rows), aligner=aligner).detect(rgb)
    assert len(faces) == 1  # the second box lies outside the image
    lm = faces[0].landmarks
    assert lm.shape == (68, 2) and np.isfinite(lm).all()
    assert (lm[:, 0] >= 150).all() and (lm[:, 0] <= 351.5).all() and (lm[:, 1] >= 80).all() and (lm[:, 1] <= 331).all()


def test_awing_source_missing_weights(tmp_path):
    src = AWingLandmarks(cache_dir=tmp_path)
    with pytest.raises(WeightsMissingError, match="talkinghead weights download awing retinaface"):
        src.detect(np.zeros((64, 64, 3), np.uint8))


def test_sadtalker_landmarks_option(tmp_path, monkeypatch):
    from talkinghead.backends.sadtalker.backend import SadTalkerAnimator

    with pytest.raises(ConfigError, match="landmarks"):
        SadTalkerAnimator(landmarks="dlib")
    assert SadTalkerAnimator().landmarks == "auto"  # the face mesh: mediapipe where it runs, else LiteRT
    monkeypatch.setenv("TALKINGHEAD_CACHE", str(tmp_path / "cache"))
    anim = SadTalkerAnimator(landmarks="awing", weights_dir=tmp_path)
    with pytest.raises(WeightsMissingError, match="talkinghead weights download awing retinaface"):
        anim.load()


@pytest.mark.slow
def test_sadtalker_uses_awing_files_in_weights_dir(tmp_path, filled, monkeypatch):
    """With both facexlib files in weights_dir, the animator builds the AWing source from them."""
    from talkinghead.backends.sadtalker.backend import SadTalkerAnimator
    from talkinghead.face.retinaface import RetinaFace

    monkeypatch.setenv("TALKINGHEAD_CACHE", str(tmp_path / "cache"))
    torch.save({"state_dict": filled}, tmp_path / AWING_FILE)
    det = RetinaFace("resnet50")
    torch.save(det.state_dict(), tmp_path / "detection_Resnet50_Final.pth")
    anim = SadTalkerAnimator(landmarks="awing", weights_dir=tmp_path)
    src = anim._make_landmarks()
    assert isinstance(src, AWingLandmarks)
    assert src.aligner._net is not None and src.detector._net is not None
    src.close()
