"""LLM ``llama-cpp``: a local GGUF model through llama-cpp-python, fully offline.

Needs ``pip install 'talkinghead[llama-cpp]'`` (llama-cpp-python builds llama.cpp from source,
which takes several minutes) and a ``.gguf`` chat model file.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

from ..errors import ConfigError, MissingDependencyError, ModelLoadError, StageError
from ..hookspecs import hookimpl
from ..stages import BackendBase
from ..values import ChatMessage

log = logging.getLogger(__name__)


class LlamaCppLLM(BackendBase):
    """A local GGUF chat model through llama-cpp-python (offline; CPU or GPU offload).

    Args:
        model_path: the ``.gguf`` file.
        n_ctx: context window in tokens.
        n_threads: CPU threads (None: llama.cpp's default).
        n_gpu_layers: layers to offload to a GPU (0: CPU only, -1: all).
        chat_format: llama-cpp-python chat template name (None: the one stored in the GGUF).
        temperature: sampling temperature.
        max_tokens: longest answer in tokens.
        seed: sampling seed (-1: random).
    """

    stage: ClassVar[str] = "llm"
    name: ClassVar[str] = "llama-cpp"
    capabilities: ClassVar[frozenset[str]] = frozenset({"stream", "offline"})

    def __init__(
        self,
        *,
        model_path: str | None = None,
        n_ctx: int = 2048,
        n_threads: int | None = None,
        n_gpu_layers: int = 0,
        chat_format: str | None = None,
        temperature: float = 0.7,
        max_tokens: int = 200,
        seed: int = -1,
    ) -> None:
        if n_ctx < 64:
            raise ConfigError(f"n_ctx must be at least 64, got {n_ctx}")
        if max_tokens < 1:
            raise ConfigError(f"max_tokens must be >= 1, got {max_tokens}")
        self.model_path, self.n_ctx, self.n_threads, self.n_gpu_layers = model_path, n_ctx, n_threads, n_gpu_layers
        self.chat_format, self.temperature, self.max_tokens, self.seed = chat_format, temperature, max_tokens, seed
        self._llm: Any = None

    def load(self) -> None:
        if self._llm is not None:
            return
        if not self.model_path:
            raise ConfigError("llama-cpp needs model_path= the path of a .gguf chat model")
        path = Path(self.model_path).expanduser()
        if not path.is_file():
            raise ModelLoadError(f"GGUF model not found: {path}; download a .gguf chat model and give its path")
        try:
            import llama_cpp
        except ImportError as exc:
            raise MissingDependencyError("llama-cpp-python", "llama-cpp", "the llama-cpp LLM") from exc
        kwargs: dict[str, Any] = {
            "model_path": str(path),
            "n_ctx": self.n_ctx,
            "n_gpu_layers": self.n_gpu_layers,
            "seed": self.seed,
            "verbose": False,
        }
        if self.n_threads is not None:
            kwargs["n_threads"] = self.n_threads
        if self.chat_format is not None:
            kwargs["chat_format"] = self.chat_format
        try:
            self._llm = llama_cpp.Llama(**kwargs)
        except Exception as exc:
            raise ModelLoadError(f"could not load GGUF model {path}: {exc}") from exc

    def close(self) -> None:
        llm, self._llm = self._llm, None
        close = getattr(llm, "close", None)
        if close is not None:
            close()

    def _create(self, messages: Sequence[ChatMessage], stream: bool) -> Any:
        if not messages:
            raise ConfigError("no messages to send to the LLM")
        self.load()
        try:
            return self._llm.create_chat_completion(
                messages=[{"role": m.role, "content": m.content} for m in messages],
                temperature=self.temperature,
                max_tokens=self.max_tokens,
                stream=stream,
            )
        except ValueError as exc:  # llama.cpp raises ValueError when the prompt exceeds n_ctx
            raise StageError("llm", self.name, f"{exc}; raise n_ctx or keep fewer exchanges in memory") from exc
        except Exception as exc:
            raise StageError("llm", self.name, str(exc)) from exc

    def complete(self, messages: Sequence[ChatMessage]) -> str:
        """The whole answer; an empty answer raises :class:`StageError`."""
        response = self._create(messages, stream=False)
        choices = response.get("choices") or []
        text = ((choices[0].get("message") or {}).get("content") or "") if choices else ""
        if not text.strip():
            reason = choices[0].get("finish_reason") if choices else "no choices"
            raise StageError("llm", self.name, f"the model returned an empty answer (finish_reason={reason}); try again")
        return text.strip()

    def stream(self, messages: Sequence[ChatMessage]) -> Iterator[str]:
        """Yield the answer's pieces as they are generated."""
        got_text = False
        try:
            for chunk in self._create(messages, stream=True):
                for choice in chunk.get("choices") or []:
                    piece = (choice.get("delta") or {}).get("content")
                    if piece:
                        got_text = got_text or bool(piece.strip())
                        yield piece
        except StageError:
            raise
        except Exception as exc:
            raise StageError("llm", self.name, str(exc)) from exc
        if not got_text:
            raise StageError("llm", self.name, "the model streamed an empty answer; try again")


@hookimpl
def register_backends(register) -> None:
    """This module's backend registers itself, exactly as a third-party plug-in does."""
    register(LlamaCppLLM)
