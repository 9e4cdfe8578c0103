"""Deterministic synthetic weights and official-format checkpoint writers.

Tests and benchmarks of the face stack cannot download the real checkpoints, so they fill every
state-dict entry of a network with a reproducible value and write it in the same layout as the
official release file. The fill is the one used to produce the upstream reference outputs
(``shared/reference/face/README.md``): for each key a CPU :class:`torch.Generator` seeded with the
unsigned CRC32 of the key draws ``z ~ N(0, 1)`` of the entry's shape, then the first matching rule
applies:

1. int64 entries (``num_batches_tracked``) -> zeros, no draw;
2. ``*.running_mean`` -> ``0.1 * z``;
3. ``*.running_var`` -> ``exp(0.2 * z)``;
4. ``*.bias`` -> ``0.1 * z``;
5. keys containing ``.noises.noise`` -> ``z``;
6. ``*.weight`` of rank <= 1 -> ``1 + 0.1 * z``;
7. other ``*.weight`` -> ``(1 / sqrt(fan_in)) * z``; fan_in is the product of ``shape[1:]``, or of
   ``shape[2:]`` for rank-5 modulated-conv weights.

Any other key gets ``z`` unchanged (none of the three face networks has such a key).
"""

from __future__ import annotations

import io
import math
import os
import zlib
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = [
    "fill_value",
    "fill_state_dict",
    "fill_like",
    "spec_from_manifest",
    "fill_check",
    "save_flat_checkpoint",
    "save_gfpgan_checkpoint",
    "checkpoint_bytes",
]


def _seed(key: str) -> int:
    return zlib.crc32(key.encode("utf-8")) & 0xFFFFFFFF


def fill_value(key: str, shape: Iterable[int], dtype: str = "float32") -> torch.Tensor:
    """The deterministic value of one state-dict entry.

    Args:
        key: The state-dict key exactly as the official checkpoint spells it (without ``module.``).
        shape: The entry's shape.
        dtype: ``"float32"`` or ``"int64"`` (the latter gives zeros).

    Returns:
        A CPU tensor of that shape.
    """
    import torch

    shape = tuple(int(s) for s in shape)
    if dtype in ("int64", "torch.int64"):
        return torch.zeros(shape, dtype=torch.int64)
    gen = torch.Generator().manual_seed(_seed(key))
    z = torch.randn(shape, generator=gen, dtype=torch.float32)
    if key.endswith(".running_mean"):
        return 0.1 * z
    if key.endswith(".running_var"):
        return torch.exp(0.2 * z)
    if key.endswith(".bias"):
        return 0.1 * z
    if ".noises.noise" in key:
        return z
    if key.endswith(".weight"):
        if len(shape) <= 1:
            return 1.0 + 0.1 * z
        fan_dims = shape[2:] if len(shape) == 5 else shape[1:]
        fan_in = math.prod(fan_dims)
        scale = 1.0 / math.sqrt(fan_in)
        return scale * z
    return z


def spec_from_manifest(manifest: Mapping[str, Any]) -> dict[str, tuple[tuple[int, ...], str]]:
    """``{key: (shape, dtype)}`` from a reference manifest (``shared/reference/face/manifests``)."""
    keys = manifest.get("keys", manifest)
    return {k: (tuple(v["shape"]), v.get("dtype", "float32")) for k, v in keys.items()}


def fill_state_dict(spec: Mapping[str, tuple[Iterable[int], str]]) -> dict[str, torch.Tensor]:
    """Fill a whole state dict from ``{key: (shape, dtype)}``, keeping the key order."""
    return {k: fill_value(k, shape, dtype) for k, (shape, dtype) in spec.items()}


def fill_like(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Fill a state dict with the same keys, shapes and dtypes as ``module.state_dict()``.

    The module is not modified; load the result with ``module.load_state_dict``.
    """
    import torch

    spec = {}
    for key, value in module.state_dict().items():
        spec[key] = (tuple(value.shape), "int64" if value.dtype == torch.int64 else "float32")
    return fill_state_dict(spec)


def fill_check(tensor: torch.Tensor) -> dict[str, Any]:
    """The manifest's ``fill_check`` summary of a tensor: float64 sum, abs sum, first 3 values."""
    import torch

    t = tensor.detach().reshape(-1)
    t64 = t.to(torch.float64)
    return {
        "sum": float(t64.sum()),
        "abs_sum": float(t64.abs().sum()),
        "first3": [float(x) for x in t[:3].tolist()],
    }


def _prefixed(state: Mapping[str, torch.Tensor], module_prefix: bool) -> dict[str, torch.Tensor]:
    if not module_prefix:
        return dict(state)
    return {f"module.{k}": v for k, v in state.items()}


def save_flat_checkpoint(
    state: Mapping[str, torch.Tensor],
    path: str | os.PathLike[str] | io.BytesIO,
    *,
    module_prefix: bool = False,
    legacy_format: bool = False,
) -> None:
    """Write a flat state dict the way the RetinaFace/ParseNet release files are laid out.

    Args:
        state: The state dict.
        path: A file path or a binary buffer.
        module_prefix: Prefix every key with ``module.`` (a ``DataParallel`` save).
        legacy_format: Use torch's pre-1.6 (non-zip) serialisation.
    """
    import torch

    torch.save(_prefixed(state, module_prefix), path, _use_new_zipfile_serialization=not legacy_format)


def save_gfpgan_checkpoint(
    state: Mapping[str, torch.Tensor],
    path: str | os.PathLike[str] | io.BytesIO,
    *,
    key: str = "params_ema",
    legacy_format: bool = True,
) -> None:
    """Write a GFPGAN-style checkpoint ``{key: state_dict}``.

    GFPGAN's clean-conversion script saves ``{'params_ema': ...}`` in the legacy (non-zip) torch
    format, which is the default here; pass ``legacy_format=False`` for the zip format and
    ``key="params"`` for the fallback container.
    """
    import torch

    torch.save({key: dict(state)}, path, _use_new_zipfile_serialization=not legacy_format)


def checkpoint_bytes(state: Mapping[str, torch.Tensor], **kwargs: Any) -> bytes:
    """The bytes :func:`save_flat_checkpoint` would write (handy for in-memory tests)."""
    buf = io.BytesIO()
    save_flat_checkpoint(state, buf, **kwargs)
    return buf.getvalue()
