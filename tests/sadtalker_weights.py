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
        from talkinghead.testing import fill

        _CACHE["state"] = fill.fill_manifest(MANIFESTS / "SadTalker_V0.0.2_256.safetensors.json",
                                               prefixes=["kp_extractor", "generator"])
    return _CACHE["state"]  # type: ignore[return-value]


def write_bundle(path: Path) -> Path:
    """A renderer-only safetensors bundle with the official key names."""
    from safetensors.numpy import save_file

    save_file({k: np.ascontiguousarray(v) for k, v in renderer_state().items()}, str(path))
    return path


#: Files of the safetensors configuration (256 bundle + both mapping nets).
BUNDLE_SET = ("SadTalker_V0.0.2_256.safetensors", "mapping_00229-model.pth.tar", "mapping_00109-model.pth.tar")
#: The legacy .pth set (256 renderer, coefficient nets, ReconNet) + the 70-d mapping net.
LEGACY_SET = ("facevid2vid_00189-model.pth.tar", "auido2exp_00300-model.pth", "auido2pose_00140-model.pth",
              "epoch_20.pth", "mapping_00229-model.pth.tar")


def write_weights_dir(folder: Path, names: tuple[str, ...] = BUNDLE_SET) -> Path:
    """Write full-size, official-format files filled by the deterministic rule (about 10 s each set)."""
    from talkinghead.testing.fill import write_checkpoint

    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        write_checkpoint(MANIFESTS / f"{name}.json", folder / name)
    return folder
