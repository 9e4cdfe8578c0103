"""A turn of a live session: its state, its result, and the work that produces its speech.

:class:`Turn` is what :meth:`LiveSession.ask` (and ``say``, ``speak``) return: wait for it with
:meth:`Turn.result` or ``await turn``. :func:`answer_sentences` is the LLM → sentences step.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

from ..text import SentenceBuffer, clean_for_speech, cut_at_sentence
from ..values import ChatMessage
from .adapters import stream_answer
from .engine import Segment
from .events import TurnStatus
from .metrics import TurnMetrics

__all__ = ["Turn", "TurnCancelled", "answer_sentences"]


class TurnCancelled(Exception):
    """Raised inside a turn's worker when the turn was interrupted or ran past its deadline."""


class Turn:
    """One turn of a live session.

    Attributes:
        id: its number in the session.
        source: ``"text"``, ``"audio"``, ``"say"``, ``"speak"`` or ``"external"``.
        question: what the user asked (transcribed for spoken questions).
        status: None while running, then a :data:`~.events.TurnStatus`.
        answer: what was actually spoken (whole sentences that played to their end).
        error: why it failed, for ``status`` ``"error"``, ``"deadline"`` or ``"nothing_understood"``.
        metrics: its :class:`~.metrics.TurnMetrics`.
    """

    def __init__(self, id: int, source: str, question: str | None = None, *, deadline: float | None = None) -> None:
        self.id, self.source, self.question = id, source, question
        self.status: TurnStatus | None = None
        self.error: str | None = None
        self.exception: BaseException | None = None
        self.metrics = TurnMetrics(id)
        self.started = time.perf_counter()
        self.deadline = None if deadline is None else self.started + deadline
        self.segments: list[Segment] = []
        self.spoken: list[str] = []
        self.all_queued = False
        self.interrupt_frame: int | None = None
        self.first_chunk_at: float | None = None
        self._cancel = threading.Event()
        self._future: concurrent.futures.Future[Turn] = concurrent.futures.Future()

    @property
    def answer(self) -> str:
        """The sentences of the answer that were spoken to their end."""
        return " ".join(s for s in self.spoken if s)

    @property
    def done(self) -> bool:
        """Whether the turn has ended."""
        return self.status is not None

    @property
    def cancelled(self) -> bool:
        """Whether the turn was interrupted or ran out of time (its worker stops at the next step)."""
        return self._cancel.is_set()

    def check(self) -> None:
        """Raise :class:`TurnCancelled` if the turn was cancelled or its deadline passed."""
        if self._cancel.is_set():
            raise TurnCancelled()
        if self.deadline is not None and time.perf_counter() > self.deadline:
            raise TurnCancelled("deadline")

    def result(self, timeout: float | None = None) -> Turn:
        """Block until the turn ends (speech played to the end, interrupted, or failed); return it."""
        return self._future.result(timeout)

    def __await__(self):
        return asyncio.wrap_future(self._future).__await__()

    def __repr__(self) -> str:
        return f"<Turn {self.id} {self.source} {self.status or 'running'}>"


def answer_sentences(
    llm: Any,
    messages: Sequence[ChatMessage],
    *,
    max_chars: int,
    turn: Turn | None = None,
) -> Iterator[str]:
    """The LLM's answer as speakable sentences, each released as soon as it is complete.

    Markdown and emoji are removed per sentence; the answer stops at ``max_chars`` characters (at
    a sentence boundary; a first sentence longer than that is cut at a word). Metrics of ``turn``
    (first token, first sentence) are filled in.
    """
    t0 = time.perf_counter()
    pieces = stream_answer(llm, messages)

    def raw_sentences() -> Iterator[str]:
        buf = SentenceBuffer()
        for piece in pieces:
            if turn is not None:
                turn.check()
                if turn.metrics.llm_first_token_s is None and piece.strip():
                    turn.metrics.llm_first_token_s = time.perf_counter() - t0
            yield from buf.push(piece)
        yield from buf.flush()

    total, first = 0, True
    try:
        for raw in raw_sentences():
            sentence = clean_for_speech(raw)
            if not sentence:
                continue
            if total + len(sentence) > max_chars:
                if first:
                    yield cut_at_sentence(sentence, max_chars)
                return
            if first and turn is not None:
                turn.metrics.llm_first_sentence_s = time.perf_counter() - t0
            first = False
            total += len(sentence) + 1
            yield sentence
    finally:
        close = getattr(pieces, "close", None)
        if close is not None:
            close()
