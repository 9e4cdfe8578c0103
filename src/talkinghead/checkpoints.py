"""Checkpoint loading for every torch network (the face stack, SadTalker, its coefficient nets).

``torch.load`` with ``weights_only=True`` (no code in a file runs), DataParallel prefixes dropped,
strict loading that names the missing, unexpected or mis-shaped tensors, and every failure turned
into a :class:`~talkinghead.errors.ModelLoadError` that says what to do. Where a file path comes from
is the weights manager's job (:func:`talkinghead.weights.resolve`), not this module's.

This is a model module: it imports torch at the top, so import it lazily.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from talkinghead.errors import ModelLoadError

__all__ = ["strip_module_prefix", "load_state_dict_file", "check_state", "load_into"]


def strip_module_prefix(state: Mapping[str, Any]) -> dict[str, Any]:
    """Drop a leading ``module.`` (DataParallel) from every key that has one."""
    return {(k[7:] if k.startswith("module.") else k): v for k, v in state.items()}


def load_state_dict_file(path: str | os.PathLike[str] | io.BytesIO, what: str) -> Any:
    """``torch.load`` on CPU with ``weights_only=True``; any failure becomes :class:`ModelLoadError`."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a bad file
        raise ModelLoadError(
            f"could not read the {what} checkpoint {str(path)!r} ({type(exc).__name__}: {exc}); "
            "the file is probably truncated or corrupt: delete it and download it again"
        ) from exc


def check_state(net: nn.Module, state: Any, *, what: str, source: Any) -> dict[str, torch.Tensor]:
    """Validate ``state`` against ``net.state_dict()`` strictly and return a loadable copy.

    Array values become tensors; missing ``*.num_batches_tracked`` counters (old ``.pth`` files) are
    filled with 0, and counters stored with shape ``(1,)`` are reshaped.

    Args:
        what: the network, for messages ("generator", "RetinaFace mobilenet0.25").
        source: where the state came from (a path or a label), for messages.

    Raises:
        ModelLoadError: not a flat state dict, missing or unexpected keys, a non-tensor entry or a
            tensor of the wrong shape — each named.
    """
    if not isinstance(state, Mapping):
        raise ModelLoadError(f"{str(source)!r} is not a flat {what} state dict; is it the right file?")
    expected = net.state_dict()
    state = {k: v if isinstance(v, torch.Tensor) or not _array_like(v) else torch.as_tensor(v) for k, v in state.items()}
    for k, t in expected.items():
        if k.endswith("num_batches_tracked"):
            v = state.get(k)
            if v is None:
                state[k] = torch.zeros((), dtype=torch.long)
            elif isinstance(v, torch.Tensor) and v.numel() == 1 and v.shape != t.shape:
                state[k] = v.reshape(t.shape)
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        raise ModelLoadError(
            f"{str(source)!r} does not match the {what} architecture: {len(missing)} missing "
            f"(e.g. {missing[:3]}), {len(unexpected)} unexpected (e.g. {unexpected[:3]}) tensors. "
            "Is it the right file for this model? If so, it is damaged: download it again."
        )
    for k, t in expected.items():
        v = state[k]
        if not isinstance(v, torch.Tensor):
            raise ModelLoadError(f"{str(source)!r}: {what} entry {k} is a {type(v).__name__}, not a tensor")
        if tuple(v.shape) != tuple(t.shape):
            raise ModelLoadError(
                f"{str(source)!r} does not match the {what} architecture: tensor {k} has shape "
                f"{tuple(v.shape)}, expected {tuple(t.shape)}. Is it the file for this network and size?"
            )
    return state


def _array_like(v: Any) -> bool:
    return hasattr(v, "__array__") and not isinstance(v, (str, bytes))


def load_into(net: nn.Module, state: Any, *, what: str, source: Any) -> nn.Module:
    """Strictly load ``state`` into ``net`` (checked by :func:`check_state`); eval mode, no grads."""
    net.load_state_dict(check_state(net, state, what=what, source=source), strict=True)
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net
