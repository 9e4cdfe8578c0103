"""SadTalker's ``runtime="onnx"`` option: its networks exported once, then run by onnxruntime.

Graphs live in ``<onnx_dir>`` (default: ``onnx/sadtalker-<size>-<nc>-<weights id>/`` in the
talkinghead cache, next to the weights) and are exported there from the loaded torch networks the
first time (about a minute), with the requested variant quantized from them.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

__all__ = ["RUNTIMES", "runtime_variant", "default_onnx_dir", "use_onnx"]

RUNTIMES = ("torch", "onnx", "onnx-int8", "onnx-fp16")


def runtime_variant(runtime: str) -> str:
    """``onnx`` -> ``fp32``, ``onnx-int8`` -> ``int8``, ``onnx-fp16`` -> ``fp16``."""
    return "fp32" if runtime == "onnx" else runtime.split("-", 1)[1]


def default_onnx_dir(size: int, coeff_nc: int, weight_files: list[list[Any]]) -> Path:
    """The cache folder of one configuration's graphs (keyed by the weight files' identity)."""
    from ...weights import default_weights_dir

    ident = hashlib.sha256(json.dumps(weight_files, sort_keys=True).encode()).hexdigest()[:12]
    return default_weights_dir().parent / "onnx" / f"sadtalker-{size}-{coeff_nc}-{ident}"


def use_onnx(nets: MutableMapping[str, Any], folder: Path, *, size: int, variant: str, device: str) -> list[str]:
    """Export the graphs ``nets`` has that are missing from ``folder`` (and the variant), then swap them in."""
    from ...onnx.export import export_graphs
    from ...onnx.graphs import sadtalker_graphs
    from ...onnx.quantize import quantize_graph
    from ...onnx.runtime import swap_sadtalker, variant_file

    names = {"exp": ("expnet_audio",), "pose": ("posevae_audio", "posevae_resunet"), "mapping": ("mapping",),
             "kp": ("kp_detector",), "gen": ("generator_encode", "generator_render"), "recon": ("reconnet",)}
    wanted = tuple(n for k, ns in names.items() if k in nets for n in ns)
    missing = tuple(n for n in wanted if not variant_file(folder, n).is_file())
    if missing:
        log.info("sadtalker: exporting %d ONNX graphs to %s (once)", len(missing), folder)
        export_graphs(sadtalker_graphs(nets, size=size, only=missing), folder, meta={"animator": "sadtalker"})
    if variant != "fp32":
        for n in wanted:
            dst = variant_file(folder, n, variant)
            if not dst.is_file():
                try:
                    quantize_graph(variant_file(folder, n), dst, variant)
                except Exception as exc:  # a graph the quantizer cannot handle stays float32
                    log.warning("sadtalker: no %s variant of %s (%s); using float32", variant, n, exc)
    return swap_sadtalker(nets, folder, variant=variant, device=device)
