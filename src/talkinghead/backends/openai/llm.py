"""LLM ``openai``: chat completions from any OpenAI-compatible server, with token streaming.

Works with OpenAI, Azure OpenAI (``api_version``), Ollama (``base_url="http://localhost:11434/v1"``),
the llama.cpp server (``http://localhost:8080/v1``), vLLM (``http://localhost:8000/v1``) and others.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

from ...errors import ConfigError, ServiceError
from ...values import ChatMessage
from . import client as oc

log = logging.getLogger(__name__)


class OpenAILLM(oc.ClientBackend):
    """Chat completions over the OpenAI protocol (OpenAI, Azure, Ollama, llama.cpp, vLLM...).

    Args:
        model: model (or Azure deployment) name.
        base_url: server URL ending in ``/v1`` (None: api.openai.com).
        api_key: the key; None reads it from ``api_key_env``. Local servers need none.
        api_key_env: environment variable holding the key (default ``OPENAI_API_KEY``, or
            ``AZURE_OPENAI_API_KEY`` with ``api_version``).
        api_version: set for Azure OpenAI (e.g. ``"2024-10-21"``); ``base_url`` is then the resource.
        temperature: sampling temperature.
        max_tokens: longest answer in tokens.
        timeout: seconds to wait for a response.
        retries: extra attempts on unreachable server, time-out, 429 or 5xx.
        backoff: first retry delay in seconds; it doubles each retry up to ``max_backoff``.
        max_backoff: longest delay between retries.
        organization: OpenAI organisation id.
    """

    stage: ClassVar[str] = "llm"
    name: ClassVar[str] = "openai"
    capabilities: ClassVar[frozenset[str]] = frozenset({"stream", "remote"})

    def __init__(
        self,
        *,
        model: str = "gpt-4o-mini",
        base_url: str | None = None,
        api_key: str | None = None,
        api_key_env: str | None = None,
        api_version: str | None = None,
        temperature: float = 0.7,
        max_tokens: int = 200,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        organization: str | None = None,
    ) -> None:
        if retries < 0:
            raise ConfigError(f"retries must be >= 0, got {retries}")
        if max_tokens < 1:
            raise ConfigError(f"max_tokens must be >= 1, got {max_tokens}")
        self.model, self.base_url, self.api_key, self.api_key_env = model, base_url, api_key, api_key_env
        self.api_version, self.temperature, self.max_tokens = api_version, temperature, max_tokens
        self.timeout, self.retries, self.backoff, self.max_backoff = timeout, retries, backoff, max_backoff
        self.organization = organization
        self._client: Any = None


    def _retry(self, call):
        return oc.with_retries(
            call,
            stage="llm",
            backend=self.name,
            base_url=self.base_url,
            key_env=oc.key_env_name(self.api_key_env, self.api_version),
            retries=self.retries,
            backoff=self.backoff,
            max_backoff=self.max_backoff,
        )

    def _request(self, messages: Sequence[ChatMessage], **extra: Any) -> dict[str, Any]:
        if not messages:
            raise ConfigError("no messages to send to the LLM")
        return {
            "model": self.model,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            **extra,
        }

    def complete(self, messages: Sequence[ChatMessage]) -> str:
        """The whole answer.

        Raises:
            ServiceError: the server failed (``transient`` tells whether retrying later may help),
                or it answered nothing.
        """
        self.load()
        request = self._request(messages)
        response = self._retry(lambda: self._client.chat.completions.create(**request, timeout=self._attempt_timeout()))
        choices = getattr(response, "choices", None) or []
        text = (choices[0].message.content or "") if choices else ""
        if not text.strip():
            reason = choices[0].finish_reason if choices else "no choices"
            raise ServiceError(
                "llm", self.name, f"the model {self.model!r} returned an empty answer (finish_reason={reason}); "
                "try again, rephrase the question, or raise max_tokens", transient=True,
            )
        return text.strip()

    def stream(self, messages: Sequence[ChatMessage]) -> Iterator[str]:
        """Yield the answer's text pieces as the server sends them.

        Connection failures before the first piece are retried like :meth:`complete`; a failure
        after text has been yielded is raised as a :class:`ServiceError` at once.
        """
        self.load()
        request = self._request(messages, stream=True)
        stream = self._retry(lambda: self._client.chat.completions.create(**request, timeout=self._attempt_timeout()))
        got_text = False
        try:
            for chunk in stream:
                for choice in getattr(chunk, "choices", None) or []:
                    piece = getattr(choice.delta, "content", None) if choice.delta is not None else None
                    if piece:
                        got_text = got_text or bool(piece.strip())
                        yield piece
        except ServiceError:
            raise
        except Exception as exc:
            err = oc.classify(
                exc, stage="llm", backend=self.name, base_url=self.base_url,
                key_env=oc.key_env_name(self.api_key_env, self.api_version),
            )
            if err is None:
                raise
            raise err from exc
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()
        if not got_text:
            raise ServiceError("llm", self.name, f"the model {self.model!r} streamed an empty answer; try again", transient=True)
