"""The weights manager: the files backends need, one cache directory, resumable downloads from
ordered mirrors (HTTP(S) and the Hugging Face Hub) and SHA-256 verification.

Three modules, imported in this order (none imports a later one):

- :mod:`.catalog` - what exists: :class:`WeightFile`, :class:`WeightBundle`, the built-in
  catalogue and the :class:`WeightRegistry` built from it and from every backend's ``weights``;
- :mod:`.download` - fetching one URL into a ``.part`` file;
- :mod:`.manager` - the cache directory, checksums, :class:`WeightsManager` and :func:`resolve`.

A backend declares the files it needs as a class attribute and resolves each one in ``load()``:

>>> from talkinghead.weights import catalog, resolve
>>> class MyEnhancer:                                          # doctest: +SKIP
...     weights = catalog.select("gfpgan-v1.4")
...     def load(self):
...         path = resolve(self.weights[0], self.weights_path, cache_dir=self.cache_dir)

``resolve`` returns the path or raises the one :class:`~talkinghead.errors.WeightsMissingError`
that names ``talkinghead weights download <name>``. See ``docs/weights.md``.
"""

from __future__ import annotations

from ..errors import WeightsMissingError
from . import catalog
from .catalog import WeightBundle, WeightFile, WeightRegistry, build_registry
from .download import DownloadError, HfRef, parse_hf_url
from .manager import (
    CACHE_ENV,
    FileStatus,
    WeightsChecksumError,
    WeightsManager,
    WeightsUnverifiedError,
    default_weights_dir,
    missing_file_error,
    resolve,
    sha256_file,
)

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
    "WeightsUnverifiedError",
    "build_registry",
    "catalog",
    "default_weights_dir",
    "missing_file_error",
    "parse_hf_url",
    "resolve",
    "sha256_file",
]
