"""The weights manager: a registry of downloadable model files, a cache directory, resumable
downloads from ordered mirrors (HTTP(S) and the Hugging Face Hub) and checksum verification.

>>> from talkinghead.weights import WeightsManager
>>> wm = WeightsManager()                                      # doctest: +SKIP
>>> wm.path("sadtalker-256")                                   # doctest: +SKIP
PosixPath('/home/me/.cache/talkinghead/weights/sadtalker/SadTalker_V0.0.2_256.safetensors')
>>> wm.require("sadtalker-full", download=True)                # doctest: +SKIP

Backends declare the files they need as ``weights: tuple[WeightFile, ...]`` on the class and call
``WeightsManager().require(self.weights)`` in ``load()``. See ``docs/weights.md``.
"""

from __future__ import annotations

from ..errors import WeightsMissingError
from .download import DownloadError, HfRef, parse_hf_url
from .manager import FileStatus, WeightsChecksumError, WeightsManager
from .registry import WeightBundle, WeightFile, WeightRegistry, build_registry
from .store import CACHE_ENV, default_weights_dir, sha256_file

__all__ = [
    "CACHE_ENV",
    "DownloadError",
    "FileStatus",
    "HfRef",
    "WeightBundle",
    "WeightFile",
    "WeightRegistry",
    "WeightsChecksumError",
    "WeightsManager",
    "WeightsMissingError",
    "build_registry",
    "default_weights_dir",
    "parse_hf_url",
    "sha256_file",
]
