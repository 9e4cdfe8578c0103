"""Tiny seeded configurations of every network talkinghead runs (tests and plug-in authors).

Each function builds the real network class with narrow channels and few blocks, fills it with the
deterministic rule of :mod:`talkinghead.testing.fill` (so two calls give bit-identical networks) and
returns it in eval mode. A forward pass takes milliseconds, so pipeline tests (the SadTalker animator,
the GFPGAN enhancer, RetinaFace and AWing inside them) run on these; the full-size parity tests
against upstream keep the release configurations and are marked ``slow``.

>>> from talkinghead.testing import nets                    # doctest: +SKIP
>>> anim = SadTalkerAnimator.from_networks(nets.tiny_sadtalker())  # doctest: +SKIP

The outputs are deterministic but meaningless (random weights): test plumbing, shapes, frame counts,
error paths and determinism with them, not pictures. Torch is imported when a function is called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .fill import fill_like

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

__all__ = [
    "TINY",
    "tiny_awing",
    "tiny_exp_net",
    "tiny_generator",
    "tiny_gfpgan",
    "tiny_kp_detector",
    "tiny_mapping",
    "tiny_parsenet",
    "tiny_pose_vae",
    "tiny_recon",
    "tiny_retinaface",
    "tiny_sadtalker",
]

#: Constructor keywords of each tiny configuration (the release defaults are the classes' defaults).
TINY: dict[str, dict[str, Any]] = {
    "kp_detector": dict(block_expansion=2, max_features=8, num_blocks=3, reshape_channel=16, reshape_depth=2),
    # three down blocks: the generator renders at half the source size (128 for a 256 crop); the
    # animator resizes its frames to the output size, as it does for any generator output size
    "generator": dict(
        block_expansion=2, max_features=8, num_down_blocks=3, reshape_channel=2, reshape_depth=4,
        num_resblocks=1, feature_channel=2,
        dense_motion=dict(block_expansion=2, max_features=8, num_blocks=2, compress=1, head_kernel=3),
        decoder=dict(oc=4, hidden=4, num_middle=1),
    ),
    "mapping": dict(descriptor_nc=16),
    "exp_net": dict(width=2),
    "pose_vae": dict(width=2, unet_filters=(2, 4, 8, 8)),
    "recon": dict(layers=(1, 1, 1, 1), width=4),
    "gfpgan": dict(style_dim=16, narrow=1 / 16, num_mlp=1),
    "retinaface-mobilenet0.25": dict(width=2, out_channels=8),
    "retinaface-resnet50": dict(width=4, depths=(1, 1, 1, 1), out_channels=8),
    "parsenet": dict(res_depth=1, base=4, min_ch=4, max_ch=8),
    "awing": dict(num_stacks=2, width=8, stem=4, depth=2),
}


def _ready(module: nn.Module, *, rule: str, prefix: str = "") -> nn.Module:
    module.load_state_dict(fill_like(module, rule=rule, prefix=prefix))
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module


# ----------------------------------------------------------------------------- SadTalker


def tiny_kp_detector() -> nn.Module:
    """A :class:`~talkinghead.backends.sadtalker.kp_detector.KPDetector` (15 keypoints, 4-deep volume)."""
    from ..backends.sadtalker.kp_detector import KPDetector

    return _ready(KPDetector(**TINY["kp_detector"]), rule="sadtalker", prefix="kp_extractor")


def tiny_generator() -> nn.Module:
    """An :class:`~talkinghead.backends.sadtalker.generator.OcclusionAwareSPADEGenerator` (frames at half
    the source size)."""
    from ..backends.sadtalker.generator import OcclusionAwareSPADEGenerator

    return _ready(OcclusionAwareSPADEGenerator(**TINY["generator"]), rule="sadtalker", prefix="generator")


def tiny_mapping(coeff_nc: int = 70) -> nn.Module:
    """A :class:`~talkinghead.backends.sadtalker.mapping.MappingNet` (70 or 73 inputs)."""
    from ..backends.sadtalker.mapping import MappingNet

    return _ready(MappingNet(coeff_nc=coeff_nc, **TINY["mapping"]), rule="sadtalker", prefix="mapping")


def tiny_exp_net() -> nn.Module:
    """An :class:`~talkinghead.backends.sadtalker.coeffnets.ExpNet`."""
    from ..backends.sadtalker.coeffnets import ExpNet

    return _ready(ExpNet(**TINY["exp_net"]), rule="sadtalker", prefix="audio2exp")


def tiny_pose_vae() -> nn.Module:
    """A :class:`~talkinghead.backends.sadtalker.coeffnets.PoseVAE`."""
    from ..backends.sadtalker.coeffnets import PoseVAE

    return _ready(PoseVAE(**TINY["pose_vae"]), rule="sadtalker", prefix="audio2pose")


def tiny_recon() -> nn.Module:
    """A :class:`~talkinghead.backends.sadtalker.recon.ReconNet` (257 coefficients out)."""
    from ..backends.sadtalker.recon import ReconNet

    return _ready(ReconNet(**TINY["recon"]), rule="sadtalker", prefix="face_3drecon")


def tiny_sadtalker(coeff_nc: int = 70) -> dict[str, nn.Module]:
    """Every network of the SadTalker animator, keyed as
    :meth:`~talkinghead.backends.sadtalker.backend.SadTalkerAnimator.from_networks` expects:
    ``kp``, ``gen``, ``mapping`` (``coeff_nc`` 70 for crop/resize modes, 73 for full modes),
    ``exp``, ``pose``, ``recon``."""
    return {"kp": tiny_kp_detector(), "gen": tiny_generator(), "mapping": tiny_mapping(coeff_nc),
            "exp": tiny_exp_net(), "pose": tiny_pose_vae(), "recon": tiny_recon()}


# ----------------------------------------------------------------------------- face


def tiny_gfpgan(out_size: int = 512) -> nn.Module:
    """A :class:`~talkinghead.face.gfpgan.GFPGANv1Clean` (512 in and out, 2-32 channels)."""
    from ..face.gfpgan import GFPGANv1Clean

    return _ready(GFPGANv1Clean(out_size, **TINY["gfpgan"]), rule="face")


def tiny_retinaface(model: str = "mobilenet0.25") -> nn.Module:
    """A :class:`~talkinghead.face.retinaface.RetinaFace` of either backbone layout."""
    from ..face.retinaface import RetinaFace, canonical_model_name

    name = canonical_model_name(model)
    return _ready(RetinaFace(name, **TINY[f"retinaface-{name}"]), rule="face")


def tiny_parsenet() -> nn.Module:
    """A :class:`~talkinghead.face.parsenet.ParseNet` (19 classes at 512)."""
    from ..face.parsenet import ParseNet

    return _ready(ParseNet(**TINY["parsenet"]), rule="face")


def tiny_awing() -> nn.Module:
    """An :class:`~talkinghead.face.awing.AWingFAN` (2 stacks, 98 points + boundary at 64x64)."""
    from ..face.awing import AWingFAN

    return _ready(AWingFAN(**TINY["awing"]), rule="face")
