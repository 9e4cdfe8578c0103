"""Built-in backends. They register through the same hook as third-party plug-ins.

Each entry is ``"module:Class"`` relative to this package. Backend modules import only light
dependencies at module level; models and heavy libraries load in ``load()``.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module

from ..hookspecs import hookimpl

BUILTIN_BACKENDS: tuple[str, ...] = (
    "piper:PiperTTS",
    "mp4:Mp4Writer",
    "gfpgan:GFPGANEnhancer",
)


@hookimpl
def register_backends(register: Callable[[type], None]) -> None:
    for spec in BUILTIN_BACKENDS:
        module, _, cls = spec.partition(":")
        register(getattr(import_module(f"{__name__}.{module}"), cls))
