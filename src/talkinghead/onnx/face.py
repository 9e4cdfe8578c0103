"""Loading the face stack's networks (official checkpoints from the weights cache) for export."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .graphs import FACE_GRAPHS

__all__ = ["load_face_networks", "FACE_WEIGHTS"]

#: graph name -> weights registry name (``talkinghead weights download NAME``)
FACE_WEIGHTS = {
    "retinaface_mobilenet": "retinaface-mobilenet0.25",
    "retinaface_resnet50": "retinaface-resnet50",
    "awing": "awing-wflw",
    "parsenet": "parsenet",
    "gfpgan": "gfpgan-v1.4",
}


def load_face_networks(names: Iterable[str] = FACE_GRAPHS, *, paths: Mapping[str, str | os.PathLike] | None = None,
                       cache_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """Load the named face networks (strictly, from the official files).

    Args:
        names: graph names of :data:`~.graphs.FACE_GRAPHS`.
        paths: explicit checkpoint path per graph name (default: the weights cache).
        cache_dir: weights cache directory.

    Raises:
        WeightsMissingError: a file is not in the cache (names the download command).
        ModelLoadError: a file does not fit the network.
    """
    from ..face.awing import load_awing
    from ..face.gfpgan import load_gfpgan
    from ..face.parsenet import load_parsenet
    from ..face.retinaface import load_retinaface

    paths = dict(paths or {})
    out: dict[str, Any] = {}
    for name in names:
        if name not in FACE_WEIGHTS:
            raise ValueError(f"unknown face graph {name!r}; choose from {', '.join(FACE_WEIGHTS)}")
        path = Path(paths[name]) if name in paths else _cached(FACE_WEIGHTS[name], cache_dir)
        if name.startswith("retinaface"):
            out[name] = load_retinaface(path, "mobilenet0.25" if name.endswith("mobilenet") else "resnet50")
        elif name == "awing":
            out[name] = load_awing(path)
        elif name == "parsenet":
            out[name] = load_parsenet(path)
        else:
            out[name] = load_gfpgan(path)
        out[name].eval()
    return out


def _cached(name: str, cache_dir: str | os.PathLike | None) -> Path:
    from ..weights import WeightsManager

    return Path(WeightsManager(cache_dir).require(name)[name])
