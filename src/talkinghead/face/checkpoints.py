"""Checkpoint loading shared by the face networks (RetinaFace, AWing, ParseNet).

``torch.load`` with ``weights_only=True`` (no code in a file runs), DataParallel prefixes dropped,
strict loading, and every failure turned into a :class:`~talkinghead.errors.ModelLoadError` that says
what to do. Where a file path comes from is the weights manager's job, not this module's.

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

__all__ = ["strip_module_prefix", "load_state_dict_file", "load_into"]


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


def load_into(net: nn.Module, state: Any, what: str, source: str) -> None:
    """Strict ``load_state_dict`` with readable :class:`ModelLoadError` on mismatch."""
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelLoadError(f"{source!r} is not a flat {what} state dict; is it the right file?")
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        msg = str(exc).splitlines()
        raise ModelLoadError(
            f"{source!r} does not match the {what} architecture ({' '.join(m.strip() for m in msg[:3])}); "
            "is it the right file for this model?"
        ) from exc
