"""The ``sadtalker`` animator: SadTalker re-implemented, weight-compatible with the official checkpoints.

Modules: :mod:`.audio` (mel windows), :mod:`.coeffnets` (ExpNet, PoseVAE), :mod:`.mapping`
(MappingNet), :mod:`.kp_detector`, :mod:`.dense_motion`, :mod:`.spade`, :mod:`.generator`,
:mod:`.recon` (ReconNet), :mod:`.checkpoint` (loading both checkpoint layouts),
:mod:`.preprocess` (crop and 3DMM coefficients of the portrait), :mod:`.backend` (the backend).
Nothing heavy is imported here: torch loads in ``load()``.
"""

from ...hookspecs import hookimpl
from .backend import SadTalkerAnimator

__all__ = ["SadTalkerAnimator"]


@hookimpl
def register_backends(register) -> None:
    """The SadTalker animator registers itself, exactly as a third-party plug-in does."""
    register(SadTalkerAnimator)
