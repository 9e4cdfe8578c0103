"""The ``viseme`` animator: the portrait itself, warped by per-portrait fields driven by visemes.

Faces and their mesh come from the face wing (:mod:`talkinghead.face.landmarks`). Modules: :mod:`.fields` (deformation
fields, built once per portrait), :mod:`.timeline` (per-frame weights from phonemes and loudness),
:mod:`.render` (one remap per frame plus the mouth interior), :mod:`.animator` (the backend).
Nothing heavy is imported here: the mesh backend and OpenCV load in ``load()`` / ``prepare()``.
"""

from ...hookspecs import hookimpl
from .animator import PreparedPortrait, VisemeAnimator

__all__ = ["VisemeAnimator", "PreparedPortrait"]


@hookimpl
def register_backends(register) -> None:
    """The viseme animator registers itself, exactly as a third-party plug-in does."""
    register(VisemeAnimator)
