"""Which parts of each network are exported to ONNX, with tensor-only wrappers and example inputs.

A :class:`GraphSpec` names one graph: the torch module (wrapped so that ``forward`` takes and returns
tensors only), example inputs (used to trace the export and to check the exported graph against
torch), which input axes are dynamic, and where the graph plugs back in at run time.

SadTalker is cut where the backend calls its networks, so :mod:`.runtime` can swap each part for an
onnxruntime session without changing the pipeline: the two wav2lip-style audio stacks (ExpNet,
PoseVAE: 99 % of the coefficient side's cost), PoseVAE's ResUnet, MappingNet, the keypoint detector,
the generator's source encoder and its per-frame renderer, and ReconNet. The face stack exports
whole networks: RetinaFace, AWing FAN, ParseNet and GFPGAN (stored noise).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch
from torch import nn

__all__ = ["GraphSpec", "Features", "sadtalker_graphs", "face_graphs", "SADTALKER_GRAPHS", "FACE_GRAPHS"]

#: SadTalker graphs, in pipeline order.
SADTALKER_GRAPHS = ("expnet_audio", "posevae_audio", "posevae_resunet", "mapping", "kp_detector",
                    "generator_encode", "generator_render", "reconnet")
FACE_GRAPHS = ("retinaface_mobilenet", "retinaface_resnet50", "awing", "parsenet", "gfpgan")


@dataclass
class GraphSpec:
    """One exportable graph.

    Attributes:
        name: file stem (``<name>.onnx``).
        module: tensor-in, tensor-out module to export.
        inputs: example inputs by name, in ``forward`` order.
        outputs: output names.
        dynamic: per input/output name, the axes that are dynamic (``{0: "batch"}``).
        doc: what the graph computes and where it plugs in.
    """

    name: str
    module: nn.Module
    inputs: dict[str, torch.Tensor]
    outputs: list[str]
    dynamic: dict[str, dict[int, str]] = field(default_factory=dict)
    doc: str = ""


class Features(NamedTuple):
    """The generator's per-portrait source encoding (what its ``render`` reads: ``volume``, ``compressed``)."""

    volume: torch.Tensor
    compressed: torch.Tensor


class _MappingTuple(nn.Module):
    """MappingNet with a tuple output (yaw, pitch, roll, t, exp) instead of a dict."""

    def __init__(self, mapping: nn.Module) -> None:
        super().__init__()
        self.mapping = mapping

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.mapping(x)
        return out["yaw"], out["pitch"], out["roll"], out["t"], out["exp"]


class _GeneratorEncode(nn.Module):
    """The generator's keypoint-independent part: source image -> (volume, compressed volume)."""

    def __init__(self, gen: nn.Module) -> None:
        super().__init__()
        self.gen = gen

    def forward(self, source: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.gen.encode_source(source)
        return f.volume, f.compressed


class _GeneratorRender(nn.Module):
    """The generator's per-frame part: (volume, compressed, source kp, driving kp) -> frame."""

    def __init__(self, gen: nn.Module) -> None:
        super().__init__()
        self.gen = gen

    def forward(self, volume: torch.Tensor, compressed: torch.Tensor, kp_source: torch.Tensor,
                kp_driving: torch.Tensor) -> torch.Tensor:
        b = kp_driving.shape[0]
        return self.gen.render(Features(volume.expand(b, -1, -1, -1, -1), compressed.expand(b, -1, -1, -1, -1)),
                               kp_source, kp_driving)


class _LastStack(nn.Module):
    """AWing FAN returning only the last hourglass's heatmaps (the ones inference uses)."""

    def __init__(self, fan: nn.Module) -> None:
        super().__init__()
        self.fan = fan

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fan(x)[-1]


class _GFPGANStored(nn.Module):
    """GFPGAN with the checkpoint's stored noise maps (deterministic): (N, 3, 512, 512) in [-1, 1]."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x, noise="stored")


def _example(shape: tuple[int, ...], seed: int, lo: float = 0.0, hi: float = 1.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=g) * (hi - lo) + lo


def sadtalker_graphs(nets: Mapping[str, Any], *, size: int = 256, batch: int = 2,
                     only: tuple[str, ...] | None = None) -> list[GraphSpec]:
    """The SadTalker graphs of loaded networks (``SadTalkerAnimator.networks()``).

    Args:
        nets: ``exp``, ``pose``, ``mapping``, ``kp``, ``gen``, ``recon`` modules.
        size: renderer resolution (256 or 512).
        batch: batch size of the example inputs of the per-frame graphs.
        only: names to build (default all of :data:`SADTALKER_GRAPHS`).
    """
    needs = {"expnet_audio": "exp", "posevae_audio": "pose", "posevae_resunet": "pose", "mapping": "mapping",
             "kp_detector": "kp", "generator_encode": "gen", "generator_render": "gen", "reconnet": "recon"}
    want = {n for n in (only or SADTALKER_GRAPHS) if needs[n] in nets}  # graphs of the networks given
    exp, pose, mapping, kp, gen = (nets.get(k) for k in ("exp", "pose", "mapping", "kp", "gen"))
    nc = getattr(mapping, "coeff_nc", 70)
    dyn = {0: "batch"}
    specs: list[GraphSpec] = []
    if "expnet_audio" in want:
        specs.append(GraphSpec("expnet_audio", exp.audio_encoder, {"mel": _example((10, 1, 80, 16), 1, -4, 4)},
                               ["embedding"], {"mel": dyn, "embedding": dyn},
                               "ExpNet audio stack: (N,1,80,16) mel windows -> (N,512,1,1)"))
    if "posevae_audio" in want:
        specs.append(GraphSpec("posevae_audio", pose.audio_encoder.audio_encoder,
                               {"mel": _example((32, 1, 80, 16), 2, -4, 4)}, ["embedding"],
                               {"mel": dyn, "embedding": dyn},
                               "PoseVAE audio stack: (N,1,80,16) mel windows -> (N,512,1,1)"))
    if "posevae_resunet" in want:
        specs.append(GraphSpec("posevae_resunet", pose.netG.decoder.resunet, {"x": _example((1, 1, 32, 6), 3)}, ["y"],
                               {"x": dyn, "y": dyn}, "PoseVAE decoder ResUnet: (B,1,32,6) -> (B,1,32,6)"))
    if "mapping" in want:
        specs.append(GraphSpec("mapping", _MappingTuple(mapping), {"windows": _example((batch, nc, 27), 4, -1, 1)},
                               ["yaw", "pitch", "roll", "t", "exp"],
                               {"windows": dyn, **{k: dyn for k in ("yaw", "pitch", "roll", "t", "exp")}},
                               f"MappingNet: (B,{nc},27) coefficient windows -> pose bins, translation, expression"))
    src = _example((1, 3, size, size), 5)
    if "kp_detector" in want:
        specs.append(GraphSpec("kp_detector", kp, {"image": src}, ["keypoints"], {"image": dyn, "keypoints": dyn},
                               f"keypoint detector: (1,3,{size},{size}) in [0,1] -> (1,15,3) canonical keypoints"))
    if "generator_encode" in want:
        specs.append(GraphSpec("generator_encode", _GeneratorEncode(gen), {"source": src}, ["volume", "compressed"],
                               {}, "generator source encoder: (1,3,S,S) -> feature volume and its compressed copy"))
    if "generator_render" in want:
        with torch.inference_mode():
            feats = gen.encode_source(src)
        kp_s = _example((batch, 15, 3), 6, -0.5, 0.5)
        kp_d = kp_s + _example((batch, 15, 3), 7, -0.05, 0.05)
        specs.append(GraphSpec("generator_render", _GeneratorRender(gen),
                               {"volume": feats.volume.clone(), "compressed": feats.compressed.clone(),
                                "kp_source": kp_s, "kp_driving": kp_d},
                               ["frame"], {"kp_source": dyn, "kp_driving": dyn, "frame": dyn},
                               "generator per frame: volume, compressed volume, source and driving keypoints "
                               "(B,15,3) -> (B,3,S,S) frames in [0,1]"))
    if "reconnet" in want:
        specs.append(GraphSpec("reconnet", nets["recon"], {"image": _example((1, 3, 224, 224), 8)}, ["coefficients"],
                               {"image": dyn, "coefficients": dyn}, "ReconNet: (N,3,224,224) in [0,1] -> (N,257) 3DMM"))
    return specs


def face_graphs(nets: Mapping[str, nn.Module], *, only: tuple[str, ...] | None = None) -> list[GraphSpec]:
    """The face-stack graphs of whichever networks are given.

    Args:
        nets: any of ``retinaface_mobilenet``, ``retinaface_resnet50`` (RetinaFace), ``awing``
            (AWingFAN), ``parsenet`` (ParseNet), ``gfpgan`` (GFPGANv1Clean).
        only: names to build (default: every given network).
    """
    dyn = {0: "batch"}
    dyn_hw = {0: "batch", 2: "height", 3: "width"}
    specs = []
    for name in only or FACE_GRAPHS:
        net = nets.get(name)
        if net is None:
            continue
        if name.startswith("retinaface"):
            specs.append(GraphSpec(name, net, {"image": _example((1, 3, 320, 320), 11, -120, 130)},
                                   ["loc", "conf", "landmarks"],
                                   {"image": dyn_hw, "loc": {0: "batch", 1: "anchors"},
                                    "conf": {0: "batch", 1: "anchors"}, "landmarks": {0: "batch", 1: "anchors"}},
                                   "RetinaFace: mean-subtracted BGR (N,3,H,W) -> boxes, scores, 5 landmarks"))
        elif name == "awing":
            specs.append(GraphSpec(name, _LastStack(net), {"image": _example((1, 3, 256, 256), 12)}, ["heatmaps"],
                                   {"image": dyn, "heatmaps": dyn},
                                   "AWing FAN: (N,3,256,256) BGR in [0,1] -> (N,99,64,64) heatmaps of the last stack"))
        elif name == "parsenet":
            specs.append(GraphSpec(name, net, {"image": _example((1, 3, 512, 512), 13, -1, 1)}, ["mask", "image_out"],
                                   {"image": dyn, "mask": dyn, "image_out": dyn},
                                   "ParseNet: (N,3,512,512) in [-1,1] -> (N,19,512,512) parsing logits"))
        elif name == "gfpgan":
            specs.append(GraphSpec(name, _GFPGANStored(net), {"image": _example((1, 3, 512, 512), 14, -1, 1)},
                                   ["restored"], {},
                                   "GFPGAN v1.4 (stored noise): (1,3,512,512) in [-1,1] -> restored face (batch 1: "
                                   "the modulated convolutions fold the batch into their groups)"))
    return specs
