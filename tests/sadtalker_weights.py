"""Shared helper for the SadTalker renderer tests: filled official-format files, written once per run."""

from __future__ import annotations

from pathlib import Path

import numpy as np

FIXTURES = Path(__file__).parent / "fixtures" / "sadtalker"
MANIFESTS = FIXTURES / "manifests"
_CACHE: dict[str, object] = {}


def renderer_state() -> dict[str, np.ndarray]:
    """Filled ``kp_extractor.`` + ``generator.`` tensors (canonical keys), computed once."""
    if "state" not in _CACHE:
        from talkinghead.backends.sadtalker import fill

        _CACHE["state"] = fill.fill_state_dict(MANIFESTS / "SadTalker_V0.0.2_256.safetensors.json",
                                               prefixes=["kp_extractor", "generator"])
    return _CACHE["state"]  # type: ignore[return-value]


def write_bundle(path: Path) -> Path:
    """A renderer-only safetensors bundle with the official key names."""
    from safetensors.numpy import save_file

    save_file({k: np.ascontiguousarray(v) for k, v in renderer_state().items()}, str(path))
    return path
