"""Conversation memory for :meth:`Avatar.ask`: a system prompt and the last few exchanges."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError
from .values import ChatMessage

DEFAULT_SYSTEM_PROMPT = (
    "You are the person in this portrait, talking with the user by voice. "
    "Answer in one to three short spoken sentences, in plain words, without lists, markdown or emoji."
)


@dataclass
class Conversation:
    """What the LLM sees: the system prompt and up to ``max_exchanges`` previous exchanges.

    Args:
        system_prompt: the persona.
        max_exchanges: how many previous question/answer pairs to send (uTalk used 2).
    """

    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    max_exchanges: int = 2
    _history: deque = field(default_factory=deque, repr=False)

    def __post_init__(self) -> None:
        if int(self.max_exchanges) < 0:
            raise ConfigError(f"memory (max_exchanges) must be >= 0, got {self.max_exchanges}")
        self.max_exchanges = int(self.max_exchanges)

    def messages(self, question: str) -> list[ChatMessage]:
        """The messages to send for ``question``."""
        msgs = [ChatMessage("system", self.system_prompt)] if self.system_prompt else []
        for q, a in list(self._history)[-self.max_exchanges :] if self.max_exchanges > 0 else []:
            msgs += [ChatMessage("user", q), ChatMessage("assistant", a)]
        msgs.append(ChatMessage("user", question))
        return msgs

    def add(self, question: str, answer: str) -> None:
        """Remember one exchange (older ones beyond ``max_exchanges`` are dropped)."""
        self._history.append((question, answer))
        while len(self._history) > max(self.max_exchanges, 0):
            self._history.popleft()

    @property
    def history(self) -> Sequence[tuple[str, str]]:
        """The remembered (question, answer) pairs, oldest first."""
        return tuple(self._history)

    def reset(self) -> None:
        """Forget every exchange."""
        self._history.clear()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable snapshot (see :meth:`from_dict`)."""
        return {
            "system_prompt": self.system_prompt,
            "max_exchanges": self.max_exchanges,
            "history": [list(x) for x in self._history],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Conversation:
        """Rebuild a conversation saved with :meth:`to_dict`."""
        conv = cls(data.get("system_prompt", DEFAULT_SYSTEM_PROMPT), int(data.get("max_exchanges", 2)))
        for q, a in data.get("history", []):
            conv.add(q, a)
        return conv
