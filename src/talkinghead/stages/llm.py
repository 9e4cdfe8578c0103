"""Language-model stage."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import ClassVar, Protocol, runtime_checkable

from ..values import ChatMessage


@runtime_checkable
class LLM(Protocol):
    """Answers a conversation. Capabilities: ``"stream"`` (implements :meth:`stream`)."""

    stage: ClassVar[str]
    name: ClassVar[str]
    capabilities: ClassVar[frozenset[str]]

    def load(self) -> None: ...

    def close(self) -> None: ...

    def complete(self, messages: Sequence[ChatMessage]) -> str:
        """Return the assistant's answer to ``messages`` (system, history, question)."""
        ...

    def stream(self, messages: Sequence[ChatMessage]) -> Iterator[str]:
        """Yield the answer in pieces as it is generated."""
        ...
