"""The SadTalker face renderer against upstream reference outputs, and the checkpoint loader.

The parity tests run the full-size renderer on the deterministic fill and are marked ``slow``; the
loader's error paths run on the tiny keypoint detector of ``talkinghead.testing.nets``.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")

from sadtalker_weights import FIXTURES, renderer_state, write_bundle  # noqa: E402

from talkinghead.backends.sadtalker import checkpoint  # noqa: E402
from talkinghead.backends.sadtalker.generator import OcclusionAwareSPADEGenerator  # noqa: E402
from talkinghead.backends.sadtalker.keypoints import transform_keypoints  # noqa: E402
from talkinghead.backends.sadtalker.kp_detector import KPDetector, gaussian_kernel  # noqa: E402
from talkinghead.errors import ModelLoadError, WeightsMissingError  # noqa: E402
from talkinghead.testing import nets  # noqa: E402


@pytest.fixture(scope="module")
def ref():
    return dict(np.load(FIXTURES / "render_ref.npz"))


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return write_bundle(tmp_path_factory.mktemp("st") / checkpoint.BUNDLE[256])


@pytest.fixture(scope="module")
def full_nets(bundle):
    state = checkpoint.read_state(bundle)
    kp = checkpoint.load_into(KPDetector(), checkpoint.select(state, "kp_extractor"), what="kp", path=bundle)
    gen = checkpoint.load_into(OcclusionAwareSPADEGenerator(), checkpoint.select(state, "generator"),
                               what="generator", path=bundle)
    return kp, gen


def _source(ref):
    return torch.from_numpy(ref["source_u8"].astype(np.float32) / np.float32(255)).permute(2, 0, 1)[None].contiguous()


@pytest.mark.slow
def test_gaussian_buffer_matches_checkpoint_value():
    k = gaussian_kernel(3, 0.25)
    assert k.shape == (3, 1, 13, 13)
    np.testing.assert_allclose(k[0, 0].sum().item(), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(k.numpy(), renderer_state()["kp_extractor.down.weight"])


@pytest.mark.slow
def test_keypoints_match_upstream(full_nets, ref):
    kp, _ = full_nets
    with torch.inference_mode():
        kc = kp(_source(ref)).numpy()
    np.testing.assert_allclose(kc, ref["kp_canonical"], atol=1e-5, rtol=0)
    for side in ("src", "drv"):
        args = [torch.from_numpy(ref[f"he_{side}_{k}"]) for k in ("yaw", "pitch", "roll", "t", "exp")]
        t_before = args[3].clone()
        out = transform_keypoints(torch.from_numpy(ref["kp_canonical"]), *args).numpy()
        want = ref["kp_source" if side == "src" else "kp_driving"]
        np.testing.assert_allclose(out, want, atol=1e-5, rtol=0)
        assert torch.equal(args[3], t_before)  # unlike upstream, the input is not modified


@pytest.mark.slow
def test_frame_matches_upstream(full_nets, ref):
    _, gen = full_nets
    with torch.inference_mode():
        frame = gen(_source(ref), torch.from_numpy(ref["kp_source"]), torch.from_numpy(ref["kp_driving"]))
    diff = np.abs(frame[0].numpy() - ref["frame"])
    assert diff.max() <= 2e-3 and diff.mean() <= 5e-5, (diff.max(), diff.mean())
    # a different driving pose must change the frame (the tolerance means something)
    assert np.abs(ref["frame"] - _source(ref)[0].numpy()).mean() > 1e-2


@pytest.mark.slow
def test_cached_source_and_weight_cache_are_equivalent(full_nets, ref):
    _, gen = full_nets
    src = _source(ref)
    ks, kd = torch.from_numpy(ref["kp_source"]), torch.from_numpy(ref["kp_driving"])
    with torch.inference_mode():
        feats = gen.encode_source(src)
        gen.decoder.set_weight_cache(True)
        try:
            two = gen.render(feats, ks.repeat(2, 1, 1), torch.cat([kd, ks]))
        finally:
            gen.decoder.set_weight_cache(False)
    diff = np.abs(two[0].numpy() - ref["frame"])
    assert diff.max() <= 2e-3 and diff.mean() <= 5e-5
    assert not torch.allclose(two[0], two[1])


def test_missing_file_names_file_and_fix(tmp_path):
    with pytest.raises(WeightsMissingError) as e:
        checkpoint.read_state(tmp_path / checkpoint.BUNDLE[256])
    msg = str(e.value)
    assert checkpoint.BUNDLE[256] in msg and "talkinghead weights download sadtalker" in msg


@pytest.mark.parametrize("name", ["SadTalker_V0.0.2_256.safetensors", "mapping_00229-model.pth.tar"])
def test_corrupt_file_is_model_load_error(tmp_path, name):
    p = tmp_path / name
    p.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(ModelLoadError) as e:
        checkpoint.read_state(p)
    assert not isinstance(e.value, WeightsMissingError) and name in str(e.value)


def test_truncated_safetensors(tmp_path):
    from safetensors.numpy import save_file

    p = tmp_path / "x.safetensors"
    save_file({"kp_extractor.kp.weight": np.zeros((15, 32, 3, 3, 3), np.float32)}, str(p))
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match="x.safetensors"):
        checkpoint.read_state(p)


def test_wrong_shape_names_key_and_shapes(tmp_path):
    net = nets.tiny_kp_detector()
    state = dict(net.state_dict())
    want = tuple(state["kp.weight"].shape)
    state["kp.weight"] = torch.zeros(15, want[1], 7, 7, 7)
    with pytest.raises(ModelLoadError) as e:
        checkpoint.load_into(nets.tiny_kp_detector(), state, what="kp_extractor", path=tmp_path / "f.safetensors")
    msg = str(e.value)
    assert "kp.weight" in msg and f"(15, {want[1]}, 7, 7, 7)" in msg and str(want) in msg


def test_missing_and_unexpected_keys(tmp_path):
    net = nets.tiny_kp_detector()
    state = dict(net.state_dict())
    # num_batches_tracked may be absent (old files)
    light = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    checkpoint.check_state(net, light, what="kp", path=tmp_path / "f")
    del light["kp.bias"]
    with pytest.raises(ModelLoadError, match="kp.bias"):
        checkpoint.check_state(net, light, what="kp", path=tmp_path / "f")
    state["extra.weight"] = torch.zeros(1)
    with pytest.raises(ModelLoadError, match="extra.weight"):
        checkpoint.check_state(net, state, what="kp", path=tmp_path / "f")


def test_substring_rule():
    st = {"generator.a.weight": 1, "kp_extractor.b": 2, "audio2pose.netG.x": 3}
    assert checkpoint.select(st, "generator") == {"a.weight": 1}
    assert checkpoint.select(st, "kp_extractor") == {"b": 2}
