"""Exporting graphs to ONNX, checking them against torch, and writing a manifest.

Export uses torch's TorchScript-based exporter (``dynamo=False``; the dynamo exporter needs
``onnxscript``) at opset 20, the first opset with 5-D ``GridSample`` (SadTalker warps a 3-D
feature volume). Each exported graph is run once with onnxruntime on the example inputs and compared
with the torch module; the differences are recorded in ``manifest.json``.
"""

from __future__ import annotations

import json
import logging
import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import MissingDependencyError
from ..output import atomic_file
from .graphs import GraphSpec

log = logging.getLogger(__name__)

__all__ = ["ExportResult", "export_graph", "export_graphs", "OPSET", "MANIFEST"]

OPSET = 20
MANIFEST = "manifest.json"


@dataclass
class ExportResult:
    """One exported graph: file, sizes and its agreement with torch on the example inputs.

    ``output_scale`` is the largest absolute torch output: float32 agreement is relative to it
    (networks with random weights, like the tests' tiny ones, can output values in the hundreds).
    """

    name: str
    file: str
    inputs: list[str]
    outputs: list[str]
    max_abs_diff: float
    mean_abs_diff: float
    bytes: int
    seconds: float
    doc: str = ""
    output_scale: float = float("nan")

    def within(self, tol: float) -> bool:
        """Whether every output agrees with torch within ``tol`` × max(1, output_scale)."""
        return bool(self.max_abs_diff <= tol * max(1.0, self.output_scale))


def _torch_outputs(module: torch.nn.Module, inputs: dict[str, torch.Tensor]) -> list[np.ndarray]:
    with torch.inference_mode():
        out = module(*inputs.values())
    outs = out if isinstance(out, (tuple, list)) else (out,)
    return [o.detach().float().cpu().numpy() for o in outs]


def export_graph(spec: GraphSpec, path: str | os.PathLike, *, opset: int = OPSET, check: bool = True) -> ExportResult:
    """Export one graph to ``path`` (atomically) and compare onnxruntime's outputs with torch's."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    module = spec.module.eval()
    with atomic_file(path) as tmp, warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about shape arithmetic and dynamo's deprecation note
        torch.onnx.export(module, tuple(spec.inputs.values()), str(tmp), dynamo=False, opset_version=opset,
                          input_names=list(spec.inputs), output_names=list(spec.outputs),
                          dynamic_axes=spec.dynamic or None, do_constant_folding=True)
    max_d = mean_d = scale = float("nan")
    if check:
        from .runtime import make_session

        sess = make_session(path)
        got = sess.run(None, {k: v.detach().cpu().numpy() for k, v in spec.inputs.items()})
        want = _torch_outputs(module, spec.inputs)
        diffs = [np.abs(np.asarray(g, np.float32) - w) for g, w in zip(got, want)]
        max_d = float(max(d.max() for d in diffs))
        mean_d = float(np.mean([d.mean() for d in diffs]))
        scale = float(max(np.abs(w).max() for w in want))
    res = ExportResult(spec.name, path.name, list(spec.inputs), list(spec.outputs), max_d, mean_d,
                       path.stat().st_size, round(time.perf_counter() - t0, 3), spec.doc, scale)
    log.info("onnx: %s -> %s (%.1f MB, max |onnx - torch| %.2e, %.1f s)", spec.name, path, res.bytes / 1e6, max_d,
             res.seconds)
    return res


def export_graphs(specs: Sequence[GraphSpec], out_dir: str | os.PathLike, *, meta: dict[str, Any] | None = None,
                  check: bool = True, progress: Callable[[str, int, int], None] | None = None) -> list[ExportResult]:
    """Export every graph into ``out_dir`` and write ``manifest.json`` (merged with an existing one)."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError(exc.name or "onnx", "onnx", "ONNX export") from exc
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for i, spec in enumerate(specs):
        results.append(export_graph(spec, out / f"{spec.name}.onnx", check=check))
        if progress is not None:
            progress("export", i + 1, len(specs))
    manifest_path = out / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        manifest = {}
    graphs = dict(manifest.get("graphs", {}))
    graphs.update({r.name: asdict(r) for r in results})
    manifest.update({"format": "talkinghead-onnx", "opset": OPSET, "torch": torch.__version__, **(meta or {}),
                     "graphs": graphs})
    with atomic_file(manifest_path) as tmp:
        tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True), encoding="utf-8")
    return results
