"""Deterministic synthetic weights and official-format checkpoint writers (tests, benchmarks, tools).

Tests cannot download the real checkpoints, so they fill every state-dict entry of a network with a
value reproducible from its key alone and write it in the layout of the official release file.
Reference outputs of the upstream code were computed elsewhere on the same fills, so the values
must stay bit-identical. There are two rules, one per family of fixtures; both seed a generator with
the unsigned CRC32 of the canonical key. Pick one with ``rule=``:

``rule="face"`` (RetinaFace, ParseNet, AWing, GFPGAN; ``shared/reference/face/README.md``). A CPU
:class:`torch.Generator` draws ``z ~ N(0, 1)`` of the entry's shape in float32, then the first
matching rule applies:

1. int64 entries (``num_batches_tracked``) -> zeros, no draw;
2. ``*.running_mean`` -> ``0.1 * z``;
3. ``*.running_var`` -> ``exp(0.2 * z)``;
4. ``*.bias`` -> ``0.1 * z``;
5. keys containing ``.noises.noise`` -> ``z``;
6. ``*.weight`` of rank <= 1 -> ``1 + 0.1 * z``;
7. other ``*.weight`` -> ``(1 / sqrt(fan_in)) * z``; fan_in is the product of ``shape[1:]``, or of
   ``shape[2:]`` for rank-5 modulated-conv weights;
8. any other key -> ``z``.

``rule="sadtalker"`` (reference §10 of ``shared/reference/sadtalker``). ``numpy.random.RandomState``
draws in float64, cast to the entry's dtype, with n = prod(shape):

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

:func:`fill_tensors` is the one entry point (``{key: (shape, dtype)}`` in, filled values out: torch
tensors for ``"face"``, numpy arrays for ``"sadtalker"``); :func:`fill_like` fills a module's own
state dict. SadTalker checkpoints are described by manifests (:func:`load_manifest`,
:func:`manifest_tensors`, :func:`fill_manifest`, :func:`write_checkpoint`); the face releases are
flat state dicts (:func:`save_flat_checkpoint`, :func:`save_gfpgan_checkpoint`). Only numpy is
needed for the SadTalker rule; torch is imported where tensors are made, safetensors where such a
file is written.
"""

from __future__ import annotations

import io
import json
import math
import os
import zlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = [
    "RULES",
    "SECTION_PREFIXES",
    "anti_alias_kernel",
    "checkpoint_bytes",
    "fill_check",
    "fill_like",
    "fill_manifest",
    "fill_tensors",
    "fill_value",
    "load_manifest",
    "manifest_tensors",
    "save_flat_checkpoint",
    "save_gfpgan_checkpoint",
    "spec_from_manifest",
    "strip_prefix",
    "write_checkpoint",
]

#: The fill rules: ``"face"`` (torch draws) and ``"sadtalker"`` (numpy draws); see the module docstring.
RULES: tuple[str, ...] = ("face", "sadtalker")

Spec = tuple[tuple[int, ...], str]


def _seed(key: str) -> int:
    return zlib.crc32(key.encode("utf-8")) & 0xFFFFFFFF


def _check_rule(rule: str) -> None:
    if rule not in RULES:
        raise ValueError(f"unknown fill rule {rule!r}; use one of {RULES}")


# ----------------------------------------------------------------------------- the face rule


def _face_value(key: str, shape: tuple[int, ...], dtype: str) -> torch.Tensor:
    import torch

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
        return (1.0 / math.sqrt(math.prod(fan_dims))) * z
    return z


# ----------------------------------------------------------------------------- the SadTalker rule

_GAUSSIAN_KEY = "kp_extractor.down.weight"


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


def _sadtalker_value(key: str, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    n = int(np.prod(shape)) if shape else 1
    if key.endswith(".num_batches_tracked"):
        return np.zeros(shape, dtype=dtype)
    rs = np.random.RandomState(_seed(key))
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


def _sadtalker_tensors(specs: Mapping[str, Spec]) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    pending_u: list[str] = []
    for key, (shape, dtype) in specs.items():
        shape = tuple(int(s) for s in shape)
        dtype = str(dtype).replace("torch.", "")
        if key == _GAUSSIAN_KEY:
            out[key] = anti_alias_kernel(shape[0]).reshape(shape).astype(dtype)
        elif key.endswith(".weight_u"):
            pending_u.append(key)
            out[key] = np.empty(shape, dtype=dtype)  # placeholder keeps the order
        else:
            out[key] = _sadtalker_value(key, shape, dtype)
    for key in pending_u:
        base = key[: -len("weight_u")]
        w = out[base + "weight_orig"].astype(np.float64)
        v = out[base + "weight_v"].astype(np.float64)
        u = w.reshape(w.shape[0], -1) @ v.reshape(-1)
        out[key] = (u / np.linalg.norm(u)).reshape(out[key].shape).astype(out[key].dtype)
    return out


# ----------------------------------------------------------------------------- one entry point


def fill_tensors(specs: Mapping[str, tuple[Iterable[int], str]], *, rule: str) -> dict[str, Any]:
    """Fill explicit tensors by a deterministic rule.

    Args:
        specs: ``{canonical_key: (shape, dtype)}``; dtype ``"float32"``/``"int64"`` (``"torch.*"``
            spellings accepted). For ``rule="sadtalker"`` a ``weight_u`` key needs its
            ``weight_orig`` and ``weight_v`` siblings in ``specs``.
        rule: ``"face"`` (torch tensors out) or ``"sadtalker"`` (numpy arrays out).

    Returns:
        ``{canonical_key: value}`` in the order of ``specs``.
    """
    _check_rule(rule)
    if rule == "sadtalker":
        return _sadtalker_tensors({k: (tuple(s), d) for k, (s, d) in specs.items()})
    return {k: _face_value(k, tuple(int(s) for s in shape), str(dtype)) for k, (shape, dtype) in specs.items()}


def fill_value(key: str, shape: Iterable[int], dtype: str = "float32", *, rule: str = "face") -> Any:
    """The deterministic value of one state-dict entry (see :func:`fill_tensors`)."""
    return fill_tensors({key: (tuple(shape), dtype)}, rule=rule)[key]


def fill_like(module: torch.nn.Module, *, rule: str = "face", prefix: str = "") -> dict[str, torch.Tensor]:
    """Fill a state dict with the keys, shapes and dtypes of ``module.state_dict()``.

    Args:
        module: The network (not modified; load the result with ``module.load_state_dict``).
        rule: ``"face"`` or ``"sadtalker"``.
        prefix: Canonical prefix the keys are filled under (``"generator"`` for a SadTalker
            sub-network: the values are those of ``generator.<key>``); the returned keys are
            the module's own.

    Returns:
        ``{key: torch.Tensor}``.
    """
    import torch

    head = prefix.rstrip(".") + "." if prefix else ""
    spec = {
        head + k: (tuple(v.shape), "int64" if v.dtype == torch.int64 else "float32")
        for k, v in module.state_dict().items()
    }
    filled = fill_tensors(spec, rule=rule)
    return {k[len(head):]: v if isinstance(v, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(v))
            for k, v in filled.items()}


def fill_check(tensor: torch.Tensor) -> dict[str, Any]:
    """The face manifests' ``fill_check`` summary of a tensor: float64 sum, abs sum, first 3 values."""
    import torch

    t = tensor.detach().reshape(-1)
    t64 = t.to(torch.float64)
    return {
        "sum": float(t64.sum()),
        "abs_sum": float(t64.abs().sum()),
        "first3": [float(x) for x in t[:3].tolist()],
    }


# ----------------------------------------------------------------------------- face release files


def spec_from_manifest(manifest: Mapping[str, Any]) -> dict[str, Spec]:
    """``{key: (shape, dtype)}`` from a face reference manifest (``shared/reference/face/manifests``)."""
    keys = manifest.get("keys", manifest)
    return {k: (tuple(v["shape"]), v.get("dtype", "float32")) for k, v in keys.items()}


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

    data = {f"module.{k}": v for k, v in state.items()} if module_prefix else dict(state)
    torch.save(data, path, _use_new_zipfile_serialization=not legacy_format)


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


# ----------------------------------------------------------------------------- SadTalker manifests

#: Canonical prefix of each section of the SadTalker ``.pth`` checkpoints, by file stem.
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


def load_manifest(manifest: str | Path | Mapping[str, Any]) -> dict[str, Any]:
    """Read a SadTalker checkpoint manifest (a path to its JSON, or an already-loaded dict)."""
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
    """A SadTalker manifest's tensors under canonical keys.

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


def fill_manifest(
    manifest: str | Path | Mapping[str, Any], prefixes: Iterable[str] | None = None
) -> dict[str, np.ndarray]:
    """Fill every tensor of a SadTalker manifest (``rule="sadtalker"``), keys with their prefix
    (``audio2exp.``...); only the canonical ``prefixes`` given, or all."""
    return fill_tensors(manifest_tensors(manifest, prefixes), rule="sadtalker")


def strip_prefix(state: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """Take one network's tensors out of a prefixed dict, removing ``prefix.``."""
    head = prefix.rstrip(".") + "."
    return {k[len(head):]: v for k, v in state.items() if k.startswith(head)}


def write_checkpoint(
    manifest: str | Path | Mapping[str, Any],
    path: str | Path,
    prefixes: Iterable[str] | None = None,
) -> Path:
    """Write a filled SadTalker checkpoint in the official on-disk format.

    Args:
        manifest: Path or dict of a manifest; its kind (safetensors or ``.pth`` sections)
            decides the format: a flat safetensors file with the prefixed keys, or a torch
            pickle ``{section: state_dict}`` (``model``, ``net_recon``, ``mapping``,
            ``generator``/``kp_detector``/``he_estimator``) with un-prefixed keys.
        path: Output file.
        prefixes: Write only these canonical prefixes (safetensors) or the sections whose
            canonical prefix is listed (``.pth``); all if None.

    Returns:
        The path written.
    """
    man = load_manifest(manifest)
    path = Path(path)
    state = fill_manifest(man, prefixes)
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
