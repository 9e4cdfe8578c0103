"""Finding and loading the official SadTalker checkpoints (safetensors bundle or the legacy .pth set).

Only ``safetensors`` and ``torch.load(weights_only=True)`` are used to read files, so no pickle code
from a checkpoint ever runs. Loading is strict: every expected tensor must be present with the
expected shape (a missing ``num_batches_tracked`` is tolerated, as torch does for old files).

Files (reference §8). Each is found with :func:`talkinghead.weights.resolve`: an explicit path
(``checkpoint`` / ``mapping_checkpoint``), else ``weights_dir/<file>`` when a folder is given, else
the verified copy in the weights cache (``<weights dir>/sadtalker/`` and, for the legacy set,
``<weights dir>/sadtalker-legacy/``):

- ``SadTalker_V0.0.2_256.safetensors`` / ``SadTalker_V0.0.2_512.safetensors``: ``kp_extractor.``,
  ``generator.``, ``audio2exp.``, ``audio2pose.``, ``face_3drecon.`` tensors.
- ``mapping_00229-model.pth.tar`` (70-d, crop/extcrop/resize) and ``mapping_00109-model.pth.tar``
  (73-d, full/extfull): ``['mapping']``.
- legacy set (256 only): ``facevid2vid_00189-model.pth.tar`` (``['generator']``, ``['kp_detector']``,
  ``['he_estimator']``), ``auido2exp_00300-model.pth`` / ``auido2pose_00140-model.pth``
  (``['model']``), ``epoch_20.pth`` (``['net_recon']``).

Sub-networks are taken out of the safetensors bundle with upstream's rule: keep the keys that
*contain* the word and remove ``word.`` from them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import ModelLoadError, WeightsMissingError
from ...weights import WeightFile, WeightsManager, catalog, missing_file_error, resolve

log = logging.getLogger(__name__)

BUNDLE = {256: "SadTalker_V0.0.2_256.safetensors", 512: "SadTalker_V0.0.2_512.safetensors"}
MAPPING = {70: "mapping_00229-model.pth.tar", 73: "mapping_00109-model.pth.tar"}
LEGACY_RENDERER = "facevid2vid_00189-model.pth.tar"
LEGACY_AUDIO2EXP = "auido2exp_00300-model.pth"
LEGACY_AUDIO2POSE = "auido2pose_00140-model.pth"
LEGACY_RECON = "epoch_20.pth"

#: catalogue entry of each official file name
_ENTRIES = {BUNDLE[256]: "sadtalker-256", BUNDLE[512]: "sadtalker-512", MAPPING[70]: "mapping-00229",
            MAPPING[73]: "mapping-00109", LEGACY_RENDERER: "sadtalker-legacy-facevid2vid",
            LEGACY_AUDIO2EXP: "sadtalker-legacy-audio2exp", LEGACY_AUDIO2POSE: "sadtalker-legacy-audio2pose",
            LEGACY_RECON: "sadtalker-legacy-recon"}

FIX = ("Run `talkinghead weights download sadtalker`, or download the SadTalker v0.0.2-rc release "
       "files (GitHub OpenTalker/SadTalker releases, or Hugging Face vinthony/SadTalker-V002rc) and "
       "place them in {dir} (or pass weights_dir=... / the explicit checkpoint paths).")


def weight_file(filename: str) -> WeightFile:
    """The catalogue entry of an official SadTalker file name."""
    return catalog.entry(_ENTRIES[filename])


def default_weights_dir(cache_dir: str | Path | None = None) -> Path:
    """Where the SadTalker files are kept in the weights cache: ``<weights dir>/sadtalker``.

    The weights dir is :func:`talkinghead.weights.default_weights_dir` (``$TALKINGHEAD_CACHE/weights``
    when that variable is set, else ``platformdirs.user_cache_dir("talkinghead")/weights``), the
    folder ``talkinghead weights download sadtalker`` writes to. The legacy set lives beside it in
    ``sadtalker-legacy``.
    """
    return WeightsManager(cache_dir).path(weight_file(BUNDLE[256])).parent


def locate(filename: str, weights_dir: str | Path | None = None, cache_dir: str | Path | None = None) -> Path:
    """Where an official file is looked for (not checked): ``weights_dir/filename`` when a folder
    is given, else its place in the weights cache."""
    if weights_dir is not None:
        return Path(weights_dir) / filename
    return WeightsManager(cache_dir).path(weight_file(filename))


def resolve_file(filename: str, weights_dir: str | Path | None = None, explicit: str | Path | None = None,
                 cache_dir: str | Path | None = None) -> Path:
    """The path to load for an official file: ``explicit``, else ``weights_dir/filename``, else the
    verified copy in the weights cache (:func:`talkinghead.weights.resolve`).

    Raises:
        WeightsMissingError: the file is not there; the message names the download command.
    """
    if explicit is None and weights_dir is not None:
        explicit = Path(weights_dir) / filename
    return resolve(weight_file(filename), explicit, cache_dir=cache_dir)


def read_state(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint file without executing pickled code.

    Args:
        path: a ``.safetensors`` file (flat tensor dict) or a torch file (zip or legacy format).

    Returns:
        The file's top-level dict.

    Raises:
        WeightsMissingError: the file does not exist.
        ModelLoadError: the file is corrupt, truncated or not a checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        if path.name in _ENTRIES:
            raise missing_file_error(weight_file(path.name), path)
        raise WeightsMissingError(
            f"SadTalker weight file {path.name} not found at {path}. " + FIX.format(dir=path.parent),
            files=[str(path)])
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            flat = dict(load_file(str(path), device="cpu"))
            for k, v in flat.items():  # scalar counters may come back as shape (1,); keep them 0-d
                if k.endswith("num_batches_tracked") and v.numel() == 1 and v.dim() != 0:
                    flat[k] = v.reshape(())
            return flat
        import torch

        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except (WeightsMissingError, ModelLoadError):
        raise
    except Exception as exc:  # corrupt/truncated files raise many different exception types
        raise ModelLoadError(
            f"Could not read the SadTalker checkpoint {path} ({type(exc).__name__}: {exc}). The file "
            f"is corrupt, truncated or not a checkpoint; delete it and download it again "
            f"(`talkinghead weights download sadtalker`).") from exc
    if not isinstance(obj, Mapping):
        raise ModelLoadError(f"{path} does not hold a checkpoint dict (found {type(obj).__name__}); "
                             f"download the official file again.")
    return dict(obj)


def select(state: Mapping[str, Any], word: str) -> dict[str, Any]:
    """Upstream's sub-network rule for the safetensors bundle: keys containing ``word``, minus ``word.``."""
    return {k.replace(word + ".", ""): v for k, v in state.items() if word in k}


def section(state: Mapping[str, Any], name: str, path: Path) -> dict[str, Any]:
    """A named sub-dict of a .pth checkpoint, with a clear error when it is missing."""
    sub = state.get(name)
    if not isinstance(sub, Mapping):
        raise ModelLoadError(f"{path} has no '{name}' section (found {sorted(map(str, state))[:8]}); it is "
                             f"not the expected SadTalker file. Download it again.")
    return dict(sub)


def check_state(module: Any, state: Mapping[str, Any], *, what: str, path: Path) -> dict[str, Any]:
    """Validate ``state`` against ``module.state_dict()`` strictly and return a loadable copy.

    Missing ``*.num_batches_tracked`` entries are filled with 0.

    Raises:
        ModelLoadError: missing or unexpected keys, or a tensor of the wrong shape (named).
    """
    import torch

    expected = module.state_dict()
    state = dict(state)
    for k, t in expected.items():
        if k.endswith("num_batches_tracked"):
            v = state.get(k)
            if v is None:
                state[k] = torch.zeros((), dtype=torch.long)
            elif isinstance(v, torch.Tensor) and v.numel() == 1 and v.shape != t.shape:
                state[k] = v.reshape(t.shape)  # some writers store the scalar counter as shape (1,)
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        raise ModelLoadError(
            f"{path}: the {what} weights do not match the network: {len(missing)} missing "
            f"(e.g. {missing[:3]}), {len(unexpected)} unexpected (e.g. {unexpected[:3]}). The file is "
            f"not the official SadTalker checkpoint it is named after; download it again.")
    for k, t in expected.items():
        v = state[k]
        if not isinstance(v, torch.Tensor):
            raise ModelLoadError(f"{path}: {what} entry {k} is a {type(v).__name__}, not a tensor.")
        if tuple(v.shape) != tuple(t.shape):
            raise ModelLoadError(
                f"{path}: {what} tensor {k} has shape {tuple(v.shape)}, expected {tuple(t.shape)}. "
                f"The file does not belong to this network/size; download the official file again.")
    return state


def load_into(module: Any, state: Mapping[str, Any], *, what: str, path: Path) -> Any:
    """Strictly load ``state`` into ``module`` (see :func:`check_state`), set eval mode, freeze."""
    module.load_state_dict(check_state(module, state, what=what, path=path), strict=True)
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module


@dataclass
class RendererNets:
    """The face-renderer networks, loaded and in eval mode."""

    kp_detector: Any
    generator: Any
    mapping: Any
    files: tuple[str, ...]


def _verify_and_drop_he_estimator(state: Mapping[str, Any], path: Path) -> None:
    """The legacy file's ``he_estimator`` is never used; check it strictly on the meta device."""
    import torch

    from .kp_detector import HEEstimator

    with torch.device("meta"):
        he = HEEstimator()
    check_state(he, section(state, "he_estimator", path), what="he_estimator", path=path)


def build_mapping(coeff_nc: int) -> Any:
    """The MappingNet of the coefficient side (the other half of this package)."""
    from .mapping import MappingNet

    return MappingNet(coeff_nc=coeff_nc)


def load_renderer(*, size: int = 256, coeff_nc: int = 70, weights_dir: str | Path | None = None,
                  checkpoint: str | Path | None = None, mapping_checkpoint: str | Path | None = None,
                  legacy: bool | None = None, cache_dir: str | Path | None = None) -> RendererNets:
    """Load KPDetector, generator and MappingNet.

    Args:
        size: 256 or 512 (which bundle; the architecture is the same).
        coeff_nc: 70 (crop/extcrop/resize: mapping_00229) or 73 (full modes: mapping_00109).
        weights_dir: folder with the files; None: the weights cache.
        checkpoint: explicit renderer file (.safetensors bundle or legacy facevid2vid .pth.tar).
        mapping_checkpoint: explicit mapping file.
        legacy: force (True) or forbid (False) the legacy .pth set; None = bundle if present,
            else the legacy file (256 only).
        cache_dir: weights cache directory when ``weights_dir`` is None (None: the default cache).

    Raises:
        WeightsMissingError, ModelLoadError: see :func:`read_state` / :func:`check_state`.
    """
    from .generator import OcclusionAwareSPADEGenerator
    from .kp_detector import KPDetector

    path = _renderer(size, weights_dir, checkpoint, legacy, cache_dir)
    state = read_state(path)
    kp, gen = KPDetector(), OcclusionAwareSPADEGenerator()
    if path.suffix == ".safetensors":
        load_into(kp, select(state, "kp_extractor"), what="kp_extractor", path=path)
        load_into(gen, select(state, "generator"), what="generator", path=path)
    else:
        load_into(kp, section(state, "kp_detector", path), what="kp_detector", path=path)
        load_into(gen, section(state, "generator", path), what="generator", path=path)
        _verify_and_drop_he_estimator(state, path)
    del state
    mpath = resolve_file(MAPPING[coeff_nc], weights_dir, mapping_checkpoint, cache_dir)
    mapping = load_into(build_mapping(coeff_nc), section(read_state(mpath), "mapping", mpath),
                        what=f"mapping (coeff_nc={coeff_nc})", path=mpath)
    return RendererNets(kp, gen, mapping, (str(path), str(mpath)))


def _renderer(size: int, weights_dir: str | Path | None, checkpoint: str | Path | None, legacy: bool | None,
              cache_dir: str | Path | None) -> Path:
    """The renderer file to load (bundle or legacy), resolved."""
    if checkpoint is not None:
        name = BUNDLE[size] if Path(checkpoint).suffix == ".safetensors" else LEGACY_RENDERER
    else:
        name = renderer_path(weights_dir, size, legacy, cache_dir).name
    return resolve_file(name, weights_dir, checkpoint, cache_dir)


def renderer_path(wdir: str | Path | None, size: int, legacy: bool | None, cache_dir: str | Path | None = None) -> Path:
    """Which renderer file to use (see :func:`load_renderer`): in ``wdir``, or in the cache if None."""
    bundle = locate(BUNDLE[size], wdir, cache_dir)
    old = locate(LEGACY_RENDERER, wdir, cache_dir)
    if legacy is True:
        if size != 256:
            raise WeightsMissingError("The legacy SadTalker .pth set has only the 256 renderer; use "
                                      f"size=256 or the {BUNDLE[512]} bundle. " + FIX.format(dir=bundle.parent),
                                      files=[str(bundle)])
        return old
    if legacy is None and not bundle.is_file() and size == 256 and old.is_file():
        return old
    return bundle


def required_files(size: int = 256, coeff_nc: int = 70) -> tuple[str, ...]:
    """File names needed for one configuration with the safetensors bundle."""
    return BUNDLE[size], MAPPING[coeff_nc]


def weights_present(weights_dir: str | Path | None = None, size: int = 256, coeff_nc: int = 70,
                    cache_dir: str | Path | None = None) -> bool:
    """True when the files of one configuration exist (bundle, or the full legacy set at 256).

    Only presence is checked (cheap); loading verifies the files."""
    if not locate(MAPPING[coeff_nc], weights_dir, cache_dir).is_file():
        return False
    if locate(BUNDLE[size], weights_dir, cache_dir).is_file():
        return True
    return size == 256 and all(locate(f, weights_dir, cache_dir).is_file() for f in
                               (LEGACY_RENDERER, LEGACY_AUDIO2EXP, LEGACY_AUDIO2POSE, LEGACY_RECON))


def load_coefficient_nets(*, size: int = 256, weights_dir: str | Path | None = None,
                          checkpoint: str | Path | None = None, legacy: bool | None = None,
                          cache_dir: str | Path | None = None) -> dict[str, Any]:
    """Load ExpNet, PoseVAE and ReconNet from the bundle (or the legacy .pth files).

    Returns:
        ``{"exp": ExpNet, "pose": PoseVAE, "recon": ReconNet}`` in eval mode.

    Raises:
        WeightsMissingError, ModelLoadError.
    """
    from .coeffnets import load_exp_net, load_pose_vae
    from .recon import load_recon_net

    path = _renderer(size, weights_dir, checkpoint, legacy, cache_dir)

    def wrap(fn: Any, state: Mapping[str, Any], p: Path, what: str) -> Any:
        try:
            return fn(state).eval()
        except ModelLoadError as exc:
            raise ModelLoadError(f"{p}: {exc}") from exc
        except (KeyError, RuntimeError, ValueError) as exc:
            raise ModelLoadError(f"{p}: the {what} weights do not match the network ({exc}). Download the "
                                 f"official file again.") from exc

    if path.suffix == ".safetensors":
        state = read_state(path)
        return {"exp": wrap(load_exp_net, select(state, "audio2exp"), path, "audio2exp"),
                "pose": wrap(load_pose_vae, select(state, "audio2pose"), path, "audio2pose"),
                "recon": wrap(load_recon_net, select(state, "face_3drecon"), path, "face_3drecon")}
    out = {}
    for key, name, sec, fn in (("exp", LEGACY_AUDIO2EXP, "model", load_exp_net),
                               ("pose", LEGACY_AUDIO2POSE, "model", load_pose_vae),
                               ("recon", LEGACY_RECON, "net_recon", load_recon_net)):
        p = resolve_file(name, weights_dir, None, cache_dir)
        out[key] = wrap(fn, section(read_state(p), sec, p), p, key)
    return out
