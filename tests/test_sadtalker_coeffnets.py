"""ExpNet / PoseVAE / coefficient generation vs upstream SadTalker on the deterministic fill.

Checkpoints are written here in the official formats (safetensors bundle subset and the
legacy .pth) from the manifests and loaded through the public loaders.
"""

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from talkinghead.backends.sadtalker import checkpoint  # noqa: E402
from talkinghead.backends.sadtalker.coeffnets import (  # noqa: E402
    generate_coefficients,
    load_exp_net,
    load_pose_vae,
    savgol_pose,
)
from talkinghead.testing.fill import fill_manifest, strip_prefix, write_checkpoint  # noqa: E402
from talkinghead.errors import ConfigError, ModelLoadError  # noqa: E402

FIX = Path(__file__).parent / "fixtures" / "sadtalker"
MAN = FIX / "manifests"


@pytest.fixture(scope="module")
def nets(tmp_path_factory):
    path = tmp_path_factory.mktemp("st") / "SadTalker_V0.0.2_256.safetensors"
    write_checkpoint(MAN / "SadTalker_V0.0.2_256.safetensors.json", path, ["audio2exp", "audio2pose"])
    state = checkpoint.read_state(path)
    return load_exp_net(checkpoint.select(state, "audio2exp")), load_pose_vae(checkpoint.select(state, "audio2pose"))


@pytest.fixture(scope="module")
def tiny():
    from talkinghead.testing import nets as tiny_nets

    return tiny_nets.tiny_exp_net(), tiny_nets.tiny_pose_vae()


@pytest.fixture(scope="module", params=["a", "b"])
def ref(request):
    return dict(np.load(FIX / f"upstream_coeff_{request.param}.npz"))


@pytest.mark.slow
def test_expnet_matches_upstream(nets, ref):
    exp_net, _ = nets
    t = int(ref["num_frames"])
    ref_exp = np.repeat(ref["ref_coeff"][None, :64], t, 0)
    exp = exp_net.predict(ref["mels"], ref_exp, ref["ratio"])
    assert exp.shape == (t, 64)
    assert np.abs(exp - ref["exp"]).max() < 1e-5


@pytest.mark.slow
def test_posevae_matches_upstream_given_z(nets, ref):
    _, pose_vae = nets
    pose, zs = pose_vae.predict(ref["mels"], ref["ref_coeff"][64:70], int(ref["pose_style"]), z=list(ref["z"]))
    assert len(zs) == len(ref["z"])
    assert np.abs(pose - ref["raw_pose"]).max() < 1e-5
    np.testing.assert_array_equal(pose[0], ref["ref_coeff"][64:70])


@pytest.mark.slow
def test_generate_coefficients_matches_upstream(nets, ref):
    exp_net, pose_vae = nets
    res = generate_coefficients(
        exp_net, pose_vae, ref["mels"], ref["ref_coeff"], pose_style=int(ref["pose_style"]),
        blink=ref["ratio"], z=list(ref["z"]),
    )
    assert res.coeffs.shape == ref["coeffs"].shape
    assert np.abs(res.coeffs - ref["coeffs"]).max() < 1e-5


@pytest.fixture(scope="module")
def short():
    return dict(np.load(FIX / "upstream_coeff_b.npz"))


def test_seeded_generator_is_deterministic(tiny, short):
    ref = short
    exp_net, pose_vae = tiny
    mels, rc = ref["mels"], ref["ref_coeff"]
    a = generate_coefficients(exp_net, pose_vae, mels, rc, generator=torch.Generator().manual_seed(5))
    b = generate_coefficients(exp_net, pose_vae, mels, rc, generator=torch.Generator().manual_seed(5))
    np.testing.assert_array_equal(a.coeffs, b.coeffs)
    c = generate_coefficients(exp_net, pose_vae, mels, rc, generator=torch.Generator().manual_seed(6))
    assert not np.array_equal(a.coeffs[1:, 64:], c.coeffs[1:, 64:])


def test_pose_style_range_and_reference_options(tiny, short):
    ref = short
    exp_net, pose_vae = tiny
    with pytest.raises(ConfigError):
        generate_coefficients(exp_net, pose_vae, ref["mels"], ref["ref_coeff"], pose_style=46)
    with pytest.raises(ConfigError):
        generate_coefficients(exp_net, pose_vae, ref["mels"], ref["ref_coeff"], pose_style=-1)
    t = ref["mels"].shape[0]
    rp = np.zeros((3, 70), np.float32)
    rp[:, 64] = [0.0, 0.1, 0.2]
    base = generate_coefficients(exp_net, pose_vae, ref["mels"], ref["ref_coeff"], z=list(ref["z"]))
    moved = generate_coefficients(exp_net, pose_vae, ref["mels"], ref["ref_coeff"], z=list(ref["z"]), ref_pose=rp)
    expect = np.resize(np.array([0.0, 0.1, 0.2], np.float32), t)
    np.testing.assert_allclose(moved.coeffs[:, 64] - base.coeffs[:, 64], expect, atol=1e-6)
    eb = generate_coefficients(exp_net, pose_vae, ref["mels"], ref["ref_coeff"], blink=ref["ratio"],
                               ref_eyeblink=np.ones((4, 73), np.float32))
    assert not eb.blink.any()


def test_savgol_short_clips():
    p = np.random.RandomState(0).standard_normal((7, 6)).astype(np.float32)
    assert savgol_pose(p).shape == (7, 6)
    assert savgol_pose(p[:2]).shape == (2, 6)


@pytest.mark.slow
def test_legacy_pth_and_strictness(tmp_path):
    pth = write_checkpoint(MAN / "auido2exp_00300-model.pth.json", tmp_path / "auido2exp_00300-model.pth")
    state = checkpoint.read_state(pth)
    net = load_exp_net(checkpoint.section(state, "model", pth))
    sd = strip_prefix(fill_manifest(MAN / "SadTalker_V0.0.2_256.safetensors.json", ["audio2exp"]), "audio2exp")
    np.testing.assert_array_equal(net.mapping1.weight.detach().numpy(), sd["mapping1.weight"])
    with pytest.raises(ModelLoadError):
        load_exp_net({**sd, "extra.weight": np.zeros(3, np.float32)})
    pose = strip_prefix(fill_manifest(MAN / "auido2pose_00140-model.pth.json"), "audio2pose")
    no_nbt = {k: v for k, v in pose.items() if not k.endswith("num_batches_tracked")}
    load_pose_vae(no_nbt)  # old files may lack num_batches_tracked
    broken = dict(pose)
    del broken["netD_motion.seq.3.bias"]
    with pytest.raises(ModelLoadError):
        load_pose_vae(broken)
    broken = dict(pose)
    broken["netG.encoder.MLP.L0.weight"] = np.zeros((128, 262), np.float32)
    with pytest.raises(ModelLoadError):
        load_pose_vae(broken)
