"""Smaller / faster variants of exported graphs: int8 (dynamic or static QDQ) and float16.

- ``int8`` — dynamic quantization (``onnxruntime.quantization.quantize_dynamic``): int8 weights,
  activations quantized per call; no calibration data.
- ``int8s`` — static QDQ quantization calibrated on example inputs (``quantize_static``).
- ``fp16`` — float16 weights and arithmetic (``convert_float_to_float16``) with float32 inputs and
  outputs kept; ops without float16 CPU kernels are left in float32.

bfloat16 is not offered as an ONNX variant: onnxruntime's CPU provider has almost no bfloat16
kernels. The torch path has ``bf16=True`` (autocast) for CPUs with native bfloat16; the benchmark
measures it side by side.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from ..errors import MissingDependencyError
from ..output import atomic_file

log = logging.getLogger(__name__)

__all__ = ["quantize_graph", "QUANT_VARIANTS"]

QUANT_VARIANTS = ("int8", "int8s", "fp16")
#: Ops kept in float32 in fp16 graphs (no float16 kernels in onnxruntime's CPU provider).
FP16_BLOCK = ["GridSample", "Resize", "InstanceNormalization", "Softmax", "ReduceSum", "Upsample"]


class _Reader:
    """Calibration data for static quantization: a list of input dicts, handed out once each."""

    def __init__(self, feeds: Iterable[Mapping[str, np.ndarray]]) -> None:
        self._it = iter([dict(f) for f in feeds])

    def get_next(self):  # type: ignore[no-untyped-def]
        return next(self._it, None)

    def rewind(self) -> None:  # newer onnxruntime versions may call it
        return None


def quantize_graph(src: str | os.PathLike, dst: str | os.PathLike, variant: str,
                   calibration: Iterable[Mapping[str, np.ndarray]] | None = None) -> Path:
    """Write the ``variant`` of graph ``src`` to ``dst`` (atomically).

    Args:
        src: the float32 graph.
        dst: where the variant goes.
        variant: ``int8``, ``int8s`` or ``fp16``.
        calibration: input dicts for ``int8s`` (at least one).
    """
    try:
        import onnx
        from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static
    except ImportError as exc:
        raise MissingDependencyError(exc.name or "onnxruntime", "onnx", "ONNX quantization") from exc
    if variant not in QUANT_VARIANTS:
        raise ValueError(f"variant must be one of {QUANT_VARIANTS}, got {variant!r}")
    src, dst = Path(src), Path(dst)
    with atomic_file(dst) as out:
        tmp = str(out)
        if variant == "int8":
            quantize_dynamic(str(src), tmp, weight_type=QuantType.QInt8)
        elif variant == "int8s":
            if calibration is None:
                raise ValueError("static int8 quantization needs calibration inputs")
            quantize_static(str(src), tmp, _Reader(calibration), quant_format=QuantFormat.QDQ,
                            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, per_channel=True)
        else:
            from onnxruntime.transformers.float16 import convert_float_to_float16

            model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True, op_block_list=FP16_BLOCK)
            onnx.save(model, tmp)
    log.info("onnx: %s -> %s (%s, %.1f MB)", src.name, dst.name, variant, dst.stat().st_size / 1e6)
    return dst
