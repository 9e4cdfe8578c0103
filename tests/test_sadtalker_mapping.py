"""MappingNet, keypoint transform and render inputs vs upstream SadTalker fixtures."""

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from talkinghead.backends.sadtalker import checkpoint  # noqa: E402
from talkinghead.backends.sadtalker.fill import write_checkpoint  # noqa: E402
from talkinghead.backends.sadtalker.mapping import (  # noqa: E402
    camera_sequence,
    keypoint_transformation,
    load_mapping_net,
    render_inputs,
)

FIX = Path(__file__).parent / "fixtures" / "sadtalker"
MAN = FIX / "manifests"
SRC = dict(np.load(FIX / "upstream_coeff_a.npz"))

CASES = {
    "crop": ("mapping_00229-model.pth.tar", dict(full=False, expression_scale=1.3, still=False)),
    "full": ("mapping_00109-model.pth.tar", dict(full=True, expression_scale=1.0, still=True, yaw=[0, 20, -10])),
}


@pytest.fixture(scope="module", params=list(CASES))
def case(request, tmp_path_factory):
    fname, kwargs = CASES[request.param]
    path = write_checkpoint(MAN / f"{fname}.json", tmp_path_factory.mktemp("m") / fname)
    net = load_mapping_net(checkpoint.section(checkpoint.read_state(path), "mapping", path))
    return net, kwargs, dict(np.load(FIX / f"upstream_mapping_{request.param}.npz"))


def test_render_inputs_match_upstream(case):
    _, kwargs, ref = case
    inp = render_inputs(SRC["ref_coeff"], SRC["coeffs"], **kwargs)
    np.testing.assert_array_equal(inp.source, ref["source"])
    np.testing.assert_array_equal(inp.target, ref["target"])
    if "yaw" in kwargs:
        np.testing.assert_allclose(inp.yaw, ref["yaw_seq"], atol=1e-5)


def test_mapping_and_keypoints_match_upstream(case):
    net, kwargs, ref = case
    inp = render_inputs(SRC["ref_coeff"], SRC["coeffs"], **kwargs)
    assert net.coeff_nc == inp.target.shape[1]
    he = net.predict(inp.target)
    for k in ("yaw", "pitch", "roll", "t", "exp"):
        assert np.abs(he[k] - ref["he_" + k]).max() < 1e-5, k
    kp_can = torch.from_numpy(ref["kp_canonical"])
    with torch.inference_mode():
        he_t = {k: torch.from_numpy(v) for k, v in he.items()}
        yaw = None if inp.yaw is None else torch.from_numpy(inp.yaw.astype(np.float32))
        kp = keypoint_transformation(kp_can.repeat(len(inp.target), 1, 1), he_t, yaw=yaw)
        src_he = net(torch.from_numpy(inp.source[None]))
        kp_src = keypoint_transformation(kp_can, src_he)
        assert float(src_he["t"][0, 0]) != 0.0  # the caller's dict is not zeroed in place
    assert np.abs(kp.numpy() - ref["kp"]).max() < 1e-5
    assert np.abs(kp_src.numpy() - ref["kp_src"]).max() < 1e-5


def test_camera_sequence():
    np.testing.assert_array_equal(camera_sequence([5], 4), [5, 5, 5, 5])
    seq = camera_sequence([0, 30], 4)
    np.testing.assert_allclose(seq, [0, 10, 20, 20])  # upstream: arange stops before 30, pads with last
    assert len(camera_sequence([0, 0, 10], 6)) == 6  # equal neighbours do not divide by zero
