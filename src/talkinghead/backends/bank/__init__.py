"""The ``bank`` animator: a slow source animator's frames rendered once per portrait, replayed in real time.

Modules: :mod:`.speech` (the bundled speech set), :mod:`.cluster` (choosing the K states),
:mod:`.build` (the resumable build), :mod:`.pack` (avatar pack files and partial builds),
:mod:`.player` (nearest states + optical-flow interpolation), :mod:`.animator` (the backend).
Sources implement :class:`talkinghead.stages.BankableAnimator` (built in: ``sadtalker``, ``viseme``).
Nothing heavy is imported here.
"""

from ...hookspecs import hookimpl
from .animator import BankAnimator, BankPrepared, default_bank_dir
from .pack import BankPack, read_pack, write_pack

__all__ = ["BankAnimator", "BankPrepared", "BankPack", "default_bank_dir", "read_pack", "write_pack"]


@hookimpl
def register_backends(register) -> None:
    """The bank animator registers itself, exactly as a third-party plug-in does."""
    register(BankAnimator)
