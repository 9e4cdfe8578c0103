"""Running exported graphs with onnxruntime in place of torch modules.

:class:`OnnxModule` is an ``nn.Module`` whose ``forward`` runs an onnxruntime session, so it can
replace a sub-network inside a torch model (its parent's other layers, and methods such as
``predict``, keep working). :func:`swap_sadtalker` replaces SadTalker's parts by the graphs of
:func:`~.graphs.sadtalker_graphs` found in a folder. Sessions are thread-safe; they hold no
per-call state.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import MissingDependencyError, ModelLoadError

__all__ = ["OnnxModule", "OnnxGenerator", "make_session", "swap_sadtalker", "VARIANTS", "variant_file"]

#: Graph variants: float32 as exported, int8 (dynamic quantization), float16 weights and activations.
VARIANTS = ("fp32", "int8", "fp16")


def variant_file(folder: str | os.PathLike, name: str, variant: str = "fp32") -> Path:
    """``<folder>/<name>.onnx`` (fp32) or ``<folder>/<name>.<variant>.onnx``."""
    suffix = ".onnx" if variant == "fp32" else f".{variant}.onnx"
    return Path(folder) / f"{name}{suffix}"


def make_session(path: str | os.PathLike, *, threads: int | None = None, device: str = "cpu") -> Any:
    """An onnxruntime session for ``path`` (CUDA when ``device`` is a CUDA device and the provider exists)."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise MissingDependencyError("onnxruntime", "onnx", "the onnx runtime") from exc
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"ONNX graph {path} not found; export it with `talkinghead export onnx`")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(threads or torch.get_num_threads())
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    providers = ["CPUExecutionProvider"]
    if str(device).startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=providers)
    except Exception as exc:  # onnxruntime raises its own exception types for corrupt graphs
        raise ModelLoadError(f"ONNX graph {path} could not be loaded ({type(exc).__name__}: {exc}); "
                             "export it again") from exc


class OnnxModule(nn.Module):
    """A torch-module stand-in that runs an ONNX graph (tensors in, tensors out, on the input's device).

    Args:
        path: the ``.onnx`` file.
        threads: onnxruntime intra-op threads (default: torch's thread count).
        device: ``cpu`` or a CUDA device (uses onnxruntime's CUDA provider when installed).
    """

    def __init__(self, path: str | os.PathLike, *, threads: int | None = None, device: str = "cpu") -> None:
        super().__init__()
        self.path = Path(path)
        self.session = make_session(path, threads=threads, device=device)
        self.input_names = [i.name for i in self.session.get_inputs()]
        self._fp16 = [i.type == "tensor(float16)" for i in self.session.get_inputs()]

    def forward(self, *args: torch.Tensor) -> Any:
        if len(args) != len(self.input_names):
            raise TypeError(f"{self.path.name} takes {len(self.input_names)} inputs, got {len(args)}")
        dev = args[0].device
        feeds = {}
        for name, a, half in zip(self.input_names, args, self._fp16):
            x = a.detach().cpu().numpy()
            feeds[name] = x.astype(np.float16) if half else (x.astype(np.float32) if x.dtype == np.float16 else x)
        outs = [torch.from_numpy(np.asarray(o, np.float32) if o.dtype == np.float16 else o).to(dev)
                for o in self.session.run(None, feeds)]
        return outs[0] if len(outs) == 1 else tuple(outs)

    def extra_repr(self) -> str:
        return str(self.path)


class OnnxGenerator(nn.Module):
    """SadTalker's generator as two graphs: ``generator_encode`` (per portrait) and ``generator_render``."""

    def __init__(self, encode: OnnxModule, render: OnnxModule) -> None:
        super().__init__()
        self.encode, self.render_graph = encode, render

    def encode_source(self, source: torch.Tensor) -> Any:
        from .graphs import Features

        volume, compressed = self.encode(source)
        return Features(volume, compressed)

    def render(self, src: Any, kp_source: torch.Tensor, kp_driving: torch.Tensor) -> torch.Tensor:
        return self.render_graph(src.volume[:1].contiguous(), src.compressed[:1].contiguous(), kp_source, kp_driving)

    def forward(self, source: torch.Tensor, kp_source: torch.Tensor, kp_driving: torch.Tensor) -> torch.Tensor:
        return self.render(self.encode_source(source[:1]), kp_source, kp_driving)


def swap_sadtalker(nets: MutableMapping[str, Any], folder: str | os.PathLike, *, variant: str = "fp32",
                   device: str = "cpu", threads: int | None = None) -> list[str]:
    """Replace SadTalker's networks in ``nets`` by the graphs in ``folder``; returns the graphs used.

    A graph missing in the requested variant falls back to the fp32 file; a part whose fp32 graph is
    missing too stays in torch.
    """
    def graph(name: str) -> OnnxModule | None:
        for v in (variant, "fp32"):
            p = variant_file(folder, name, v)
            if p.is_file():
                used.append(p.name)
                return OnnxModule(p, threads=threads, device=device)
        return None

    used: list[str] = []
    if "exp" in nets and (g := graph("expnet_audio")) is not None:
        nets["exp"].audio_encoder = g
    if "pose" in nets:
        if (g := graph("posevae_audio")) is not None:
            nets["pose"].audio_encoder.audio_encoder = g
        if (g := graph("posevae_resunet")) is not None:
            nets["pose"].netG.decoder.resunet = g
    if "mapping" in nets and (g := graph("mapping")) is not None:
        nets["mapping"] = g
    if "kp" in nets and (g := graph("kp_detector")) is not None:
        nets["kp"] = g
    if "gen" in nets:
        enc, ren = graph("generator_encode"), graph("generator_render")
        if enc is not None and ren is not None:
            nets["gen"] = OnnxGenerator(enc, ren)
    if "recon" in nets and (g := graph("reconnet")) is not None:
        nets["recon"].backbone = _ReconAsBackbone(g)
        nets["recon"].final_layers = nn.ModuleList([nn.Identity()])
    return used


class _ReconAsBackbone(nn.Module):
    """The whole ReconNet graph placed as ReconNet's backbone (its heads become one identity), so
    ``ReconNet.predict`` keeps working: (N,3,224,224) -> (N,257,1,1)."""

    def __init__(self, graph: OnnxModule) -> None:
        super().__init__()
        self.graph = graph
        self.anchor = nn.Parameter(torch.zeros(1), requires_grad=False)  # predict() reads a parameter's device

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.graph(x)[:, :, None, None]


class _OnnxGFPGAN(OnnxModule):
    """GFPGAN's exported graph called like the torch network (keyword options are the graph's: stored noise)."""

    def forward(self, x: torch.Tensor, **_: Any) -> Any:  # type: ignore[override]
        # the graph has batch 1 (modulated convolutions fold the batch into their groups)
        return torch.cat([super(_OnnxGFPGAN, self).forward(x[i:i + 1]) for i in range(x.shape[0])])


def onnx_gfpgan(net: nn.Module, weights: str | os.PathLike, graph: str | os.PathLike | None = None, *,
                device: str = "cpu") -> OnnxModule:
    """GFPGAN as an onnxruntime graph: ``graph`` if given, else one exported once into the cache."""
    if graph is not None:
        return _OnnxGFPGAN(graph, device=device)
    import hashlib

    from ..weights import default_weights_dir

    st = Path(weights).stat()
    ident = hashlib.sha256(f"{Path(weights).name}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:12]
    path = default_weights_dir().parent / "onnx" / f"gfpgan-v1.4-{ident}" / "gfpgan.onnx"
    if not path.is_file():
        from .export import export_graphs
        from .graphs import face_graphs

        export_graphs(face_graphs({"gfpgan": net.float().cpu()}), path.parent)
        net.to(device)
    return _OnnxGFPGAN(path, device=device)
