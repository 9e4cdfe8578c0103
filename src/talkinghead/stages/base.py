"""What every stage backend has in common."""

from __future__ import annotations

from typing import ClassVar, Protocol, runtime_checkable

STAGES: tuple[str, ...] = ("asr", "llm", "tts", "animator", "enhancer", "writer")


@runtime_checkable
class Backend(Protocol):
    """A backend of any stage.

    Class attributes:
        stage: which stage it implements (one of :data:`STAGES`).
        name: the name users select it by (``tts="piper"``).
        capabilities: free-form capability flags (``"phonemes"``, ``"stream"``, ``"gpu"``...).

    Backends are constructed with keyword configuration only and must not load models in
    ``__init__``: :meth:`load` does that, once, and :meth:`close` releases it.
    """

    stage: ClassVar[str]
    name: ClassVar[str]
    capabilities: ClassVar[frozenset[str]]

    def load(self) -> None:
        """Load models and other heavy resources. Calling it twice is a no-op."""
        ...

    def close(self) -> None:
        """Release what :meth:`load` acquired."""
        ...


class BackendBase:
    """Optional convenience base class: no-op ``load``/``close`` and a readable ``repr``."""

    stage: ClassVar[str]
    name: ClassVar[str]
    capabilities: ClassVar[frozenset[str]] = frozenset()

    def load(self) -> None:  # noqa: D102 - documented on the protocol
        return None

    def close(self) -> None:  # noqa: D102
        return None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.stage}:{self.name}>"
