"""The tiny seeded networks of ``talkinghead.testing.nets`` and the release layouts they must not change."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from talkinghead.testing import nets  # noqa: E402
from talkinghead.testing.fill import load_manifest, manifest_tensors  # noqa: E402

MAN = Path(__file__).parent / "fixtures" / "sadtalker" / "manifests"

BUILDERS = {
    "kp_detector": nets.tiny_kp_detector,
    "generator": nets.tiny_generator,
    "mapping": nets.tiny_mapping,
    "exp_net": nets.tiny_exp_net,
    "pose_vae": nets.tiny_pose_vae,
    "recon": nets.tiny_recon,
    "gfpgan": nets.tiny_gfpgan,
    "retinaface-mobilenet0.25": lambda: nets.tiny_retinaface("mobilenet0.25"),
    "retinaface-resnet50": lambda: nets.tiny_retinaface("resnet50"),
    "parsenet": nets.tiny_parsenet,
    "awing": nets.tiny_awing,
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(BUILDERS))
def test_tiny_networks_are_small_seeded_and_in_eval_mode(name):
    a, b = BUILDERS[name](), BUILDERS[name]()
    assert not a.training and all(not p.requires_grad for p in a.parameters())
    assert sum(p.numel() for p in a.parameters()) < 600_000, name
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)  # deterministic fill
    assert all(torch.isfinite(v.float()).all() for v in sa.values())


@pytest.mark.slow
def test_tiny_forwards_give_the_release_output_shapes():
    with torch.inference_mode():
        src = torch.rand(1, 3, 256, 256)
        kp = nets.tiny_kp_detector()(src)
        assert kp.shape == (1, 15, 3) and torch.isfinite(kp).all()
        frame = nets.tiny_generator()(src, kp, kp + 0.01)
        assert frame.shape == (1, 3, 128, 128) and 0 <= float(frame.min()) and float(frame.max()) <= 1
        he = nets.tiny_mapping(73)(torch.rand(2, 73, 27))
        assert he["yaw"].shape == (2, 66) and he["exp"].shape == (2, 45)
        assert nets.tiny_exp_net()(torch.rand(3, 1, 80, 16), torch.rand(3, 64), torch.rand(3, 1)).shape == (3, 64)
        pose, _ = nets.tiny_pose_vae().predict(np.random.rand(40, 80, 16).astype(np.float32), np.zeros(6, np.float32))
        assert pose.shape == (40, 6) and np.isfinite(pose).all()
        assert nets.tiny_recon()(torch.rand(1, 3, 224, 224)).shape == (1, 257)
        assert nets.tiny_gfpgan(64)(torch.rand(1, 3, 64, 64) * 2 - 1).shape == (1, 3, 64, 64)
        loc, conf, ldm = nets.tiny_retinaface()(torch.rand(1, 3, 64, 96))
        assert loc.shape[-1] == 4 and conf.shape[-1] == 2 and ldm.shape[-1] == 10
        mask, image = nets.tiny_parsenet()(torch.rand(1, 3, 64, 64))  # fully convolutional (512 in use)
        assert mask.shape == (1, 19, 64, 64) and image.shape == (1, 3, 64, 64)
        heat = nets.tiny_awing()(torch.rand(1, 3, 256, 256))
        assert len(heat) == 2 and heat[-1].shape == (1, 99, 64, 64)


def _meta_shapes(module_ctor, prefix: str = "") -> dict[str, tuple[int, ...]]:
    with torch.device("meta"):
        module = module_ctor()
    return {prefix + k: tuple(v.shape) for k, v in module.state_dict().items()}


@pytest.mark.slow
def test_release_configurations_keep_the_official_layout():
    """The size parameters leave the defaults exactly the official checkpoints' layout (meta device)."""
    from talkinghead.backends.sadtalker.coeffnets import ExpNet, PoseVAE
    from talkinghead.backends.sadtalker.generator import OcclusionAwareSPADEGenerator
    from talkinghead.backends.sadtalker.kp_detector import KPDetector
    from talkinghead.backends.sadtalker.mapping import MappingNet
    from talkinghead.backends.sadtalker.recon import ReconNet

    bundle = load_manifest(MAN / "SadTalker_V0.0.2_256.safetensors.json")
    for prefix, ctor in (("kp_extractor", KPDetector), ("generator", OcclusionAwareSPADEGenerator),
                         ("audio2exp", ExpNet), ("face_3drecon", ReconNet)):
        want = {k: tuple(s) for k, (s, _) in manifest_tensors(bundle, [prefix]).items()}
        got = _meta_shapes(ctor, prefix + ".")
        assert got == {k: v for k, v in want.items() if k in got or not k.endswith("num_batches_tracked")}, prefix
    pose_want = {k: tuple(s) for k, (s, _) in manifest_tensors(bundle, ["audio2pose"]).items()
                 if not k.startswith(("audio2pose.netG.encoder.", "audio2pose.netD_motion."))}
    assert _meta_shapes(PoseVAE, "audio2pose.") == pose_want
    for coeff_nc, fname in ((70, "mapping_00229-model.pth.tar"), (73, "mapping_00109-model.pth.tar")):
        want = {k: tuple(s) for k, (s, _) in manifest_tensors(MAN / f"{fname}.json").items()}
        assert _meta_shapes(lambda: MappingNet(coeff_nc=coeff_nc), "mapping.") == want
