"""Deterministic weight fill for SadTalker-format checkpoints (tests and tools).

The fill makes every tensor listed in a checkpoint manifest reproducible from its
canonical key alone, so tests can build official-format checkpoint files without
downloading any weights, and reference outputs computed elsewhere on the same fill
can be compared number for number.

API:
    ``load_manifest(path_or_dict) -> dict``
        Read a manifest JSON (``manifests/<checkpoint>.json``).
    ``manifest_tensors(manifest, prefixes=None) -> dict[str, (shape, dtype)]``
        The canonical (prefixed) keys of a manifest with their shapes and dtypes.
    ``fill_state_dict(manifest_path_or_dict, prefixes=None) -> dict[str, np.ndarray]``
        The filled tensors under their canonical keys (``audio2exp.``, ``audio2pose.``,
        ``face_3drecon.``, ``kp_extractor.``, ``generator.``, ``he_estimator.``,
        ``mapping.``), optionally only those whose prefix is in ``prefixes``.
    ``fill_tensors(specs) -> dict[str, np.ndarray]``
        The same rule on an explicit ``{canonical_key: (shape, dtype)}`` mapping (for
        tiny test networks built from ``module.state_dict()`` shapes).
    ``strip_prefix(state, prefix) -> dict``
        The sub-dict of one network with ``prefix.`` removed (the upstream loader rule).
    ``write_checkpoint(manifest_path_or_dict, path, prefixes=None) -> Path``
        Write an official-format file: a safetensors manifest gives a flat safetensors
        file with the prefixed keys; a ``.pth``/``.pth.tar`` manifest gives a torch
        pickle ``{section: state_dict}`` (``model``, ``net_recon``, ``mapping``,
        ``generator``/``kp_detector``/``he_estimator``) with un-prefixed keys.

The rule (reference §10), per canonical key K with shape S, n = prod(S) and
``rs = numpy.random.RandomState(zlib.crc32(K) & 0xffffffff)``, drawn in float64 and
cast to the manifest dtype:

- ``*.num_batches_tracked`` -> 0
- ``*.running_mean`` -> ``0.1 * rs.standard_normal(n)``
- ``*.running_var`` -> ``1 + 0.25 * rs.random_sample(n)``
- ``*.weight_v`` -> ``v / |v|`` with ``v = rs.standard_normal(n)``
- ``*.weight_u`` -> ``u / |u|`` with ``u = W v`` (W = filled ``weight_orig`` as (S0, -1),
  v = filled ``weight_v``, both float32 values taken to float64)
- other tensors with ndim >= 2 -> ``rs.standard_normal(n) / sqrt(prod(S[1:]))``
- 1-D ``*.bias`` -> ``0.02 * rs.standard_normal(n)``
- 1-D ``*.weight`` -> ``1 + 0.1 * rs.standard_normal(n)``
- ``kp_extractor.down.weight`` keeps the anti-alias Gaussian (sigma 1.5, 13x13).

Only numpy is needed to fill; writing ``.pth`` files needs torch, writing
safetensors files needs the ``safetensors`` package (both imported on use).
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "SECTION_PREFIXES",
    "anti_alias_kernel",
    "fill_state_dict",
    "fill_tensors",
    "load_manifest",
    "manifest_tensors",
    "strip_prefix",
    "write_checkpoint",
]

#: Canonical prefix of each section of the ``.pth`` checkpoints, by file stem.
SECTION_PREFIXES: dict[str, dict[str, str]] = {
    "auido2exp_00300-model.pth": {"model": "audio2exp"},
    "auido2pose_00140-model.pth": {"model": "audio2pose"},
    "epoch_20.pth": {"net_recon": "face_3drecon"},
    "facevid2vid_00189-model.pth.tar": {
        "generator": "generator",
        "kp_detector": "kp_extractor",
        "he_estimator": "he_estimator",
    },
    "mapping_00229-model.pth.tar": {"mapping": "mapping"},
    "mapping_00109-model.pth.tar": {"mapping": "mapping"},
}

_GAUSSIAN_KEY = "kp_extractor.down.weight"

Spec = tuple[tuple[int, ...], str]


def load_manifest(manifest: str | Path | Mapping[str, Any]) -> dict[str, Any]:
    """Read a manifest.

    Args:
        manifest: A path to a manifest JSON file, or an already-loaded manifest dict.

    Returns:
        The manifest dict.
    """
    if isinstance(manifest, Mapping):
        return dict(manifest)
    with open(manifest, encoding="utf-8") as fh:
        return json.load(fh)


def _checkpoint_name(manifest: Mapping[str, Any]) -> str:
    return str(manifest.get("checkpoint", "")).split(" ")[0]


def _is_safetensors(manifest: Mapping[str, Any]) -> bool:
    return "sections" not in manifest


def _section_prefix(manifest: Mapping[str, Any], section: str) -> str:
    name = _checkpoint_name(manifest)
    for stem, table in SECTION_PREFIXES.items():
        if name.startswith(stem) and section in table:
            return table[section]
    if section == "mapping":
        return "mapping"
    raise ValueError(f"unknown section {section!r} in manifest {name!r}")


def manifest_tensors(
    manifest: str | Path | Mapping[str, Any], prefixes: Iterable[str] | None = None
) -> dict[str, Spec]:
    """List a manifest's tensors under canonical keys.

    Args:
        manifest: Path or dict of a manifest.
        prefixes: Keep only these canonical prefixes (``"audio2exp"``, ...); all if None.

    Returns:
        ``{canonical_key: (shape, dtype)}`` in manifest order.
    """
    man = load_manifest(manifest)
    keep = None if prefixes is None else set(prefixes)
    out: dict[str, Spec] = {}
    if _is_safetensors(man):
        for key, info in man["tensors"].items():
            if keep is None or key.split(".", 1)[0] in keep:
                out[key] = (tuple(info["shape"]), info["dtype"])
        return out
    for section, body in man["sections"].items():
        prefix = _section_prefix(man, section)
        if keep is not None and prefix not in keep:
            continue
        for key, info in body["tensors"].items():
            out[f"{prefix}.{key}"] = (tuple(info["shape"]), info["dtype"])
    return out


def anti_alias_kernel(channels: int = 3, scale: float = 0.25) -> np.ndarray:
    """The fixed Gaussian of face-vid2vid's anti-alias downsampler, (C, 1, k, k)."""
    sigma = (1.0 / scale - 1.0) / 2.0
    size = 2 * round(sigma * 4) + 1
    mean = (size - 1) / 2.0
    grid = np.arange(size, dtype=np.float32)
    arg = (-((grid - np.float32(mean)) ** 2) / np.float32(2 * sigma**2)).astype(np.float32)
    # exp in float64 rounded to float32 reproduces torch's float32 exp bit for bit here
    g1 = np.exp(arg.astype(np.float64)).astype(np.float32)
    kernel = (g1[:, None] * g1[None, :]).astype(np.float32)
    kernel = kernel / kernel.sum(dtype=np.float32)
    return np.repeat(kernel[None, None], channels, axis=0).astype(np.float32)


def _rng(key: str) -> np.random.RandomState:
    return np.random.RandomState(zlib.crc32(key.encode()) & 0xFFFFFFFF)


def _fill_one(key: str, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    n = int(np.prod(shape)) if shape else 1
    if key.endswith(".num_batches_tracked"):
        return np.zeros(shape, dtype=dtype)
    rs = _rng(key)
    if key.endswith(".running_mean"):
        vals = 0.1 * rs.standard_normal(n)
    elif key.endswith(".running_var"):
        vals = 1.0 + 0.25 * rs.random_sample(n)
    elif key.endswith(".weight_v"):
        v = rs.standard_normal(n)
        vals = v / np.linalg.norm(v)
    elif len(shape) >= 2:
        vals = rs.standard_normal(n) / math.sqrt(float(np.prod(shape[1:])))
    elif key.endswith(".bias"):
        vals = 0.02 * rs.standard_normal(n)
    elif key.endswith(".weight"):
        vals = 1.0 + 0.1 * rs.standard_normal(n)
    else:
        raise ValueError(f"no fill rule for 1-D tensor {key!r}")
    return vals.reshape(shape).astype(dtype)


def fill_tensors(specs: Mapping[str, Spec]) -> dict[str, np.ndarray]:
    """Fill explicit tensors by the deterministic rule.

    Args:
        specs: ``{canonical_key: (shape, dtype)}``. A ``weight_u`` key needs its
            ``weight_orig`` and ``weight_v`` siblings in ``specs``.

    Returns:
        ``{canonical_key: array}`` in the order of ``specs``.
    """
    out: dict[str, np.ndarray] = {}
    pending_u: list[str] = []
    for key, (shape, dtype) in specs.items():
        shape = tuple(int(s) for s in shape)
        if key == _GAUSSIAN_KEY:
            out[key] = anti_alias_kernel(shape[0]).reshape(shape).astype(dtype)
        elif key.endswith(".weight_u"):
            pending_u.append(key)
            out[key] = np.empty(shape, dtype=dtype)  # placeholder keeps the order
        else:
            out[key] = _fill_one(key, shape, dtype)
    for key in pending_u:
        base = key[: -len("weight_u")]
        w = out[base + "weight_orig"].astype(np.float64)
        v = out[base + "weight_v"].astype(np.float64)
        u = w.reshape(w.shape[0], -1) @ v.reshape(-1)
        out[key] = (u / np.linalg.norm(u)).reshape(out[key].shape).astype(out[key].dtype)
    return out


def fill_state_dict(
    manifest: str | Path | Mapping[str, Any], prefixes: Iterable[str] | None = None
) -> dict[str, np.ndarray]:
    """Fill every tensor of a manifest.

    Args:
        manifest: Path or dict of a manifest.
        prefixes: Keep only these canonical prefixes; all if None.

    Returns:
        ``{canonical_key: array}`` (keys carry their prefix, e.g. ``audio2exp.``).
    """
    return fill_tensors(manifest_tensors(manifest, prefixes))


def strip_prefix(state: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """Take one network's tensors out of a prefixed dict, removing ``prefix.``."""
    head = prefix.rstrip(".") + "."
    return {k[len(head):]: v for k, v in state.items() if k.startswith(head)}


def write_checkpoint(
    manifest: str | Path | Mapping[str, Any],
    path: str | Path,
    prefixes: Iterable[str] | None = None,
) -> Path:
    """Write a filled checkpoint in the official on-disk format.

    Args:
        manifest: Path or dict of a manifest; its kind (safetensors or ``.pth``
            sections) decides the format.
        path: Output file.
        prefixes: Write only these canonical prefixes (safetensors) or the sections
            whose canonical prefix is listed (``.pth``); all if None.

    Returns:
        The path written.
    """
    man = load_manifest(manifest)
    path = Path(path)
    state = fill_state_dict(man, prefixes)
    if _is_safetensors(man):
        from safetensors.numpy import save_file

        save_file({k: np.ascontiguousarray(v) for k, v in state.items()}, str(path))
        return path
    import torch

    payload: dict[str, Any] = {}
    for section in man["sections"]:
        prefix = _section_prefix(man, section)
        sub = strip_prefix(state, prefix)
        if sub:
            payload[section] = {k: torch.from_numpy(np.array(v)) for k, v in sub.items()}
    torch.save(payload, str(path))
    return path
