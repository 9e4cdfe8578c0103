"""The llama-cpp LLM backend against a fake ``llama_cpp`` module (the real one is an optional extra)."""

from __future__ import annotations

import sys
import types

import pytest

from talkinghead.backends.llama_cpp import LlamaCppLLM
from talkinghead.errors import ConfigError, ModelLoadError, StageError
from talkinghead.values import ChatMessage

MSGS = [ChatMessage("system", "Be brief."), ChatMessage("user", "Hi")]


@pytest.fixture
def gguf(tmp_path):
    path = tmp_path / "tiny.gguf"
    path.write_bytes(b"GGUF")
    return path


@pytest.fixture
def fake_llama(monkeypatch):
    mod = types.ModuleType("llama_cpp")
    mod.created, mod.calls, mod.answer = [], [], "Hello from GGUF."

    class Llama:
        def __init__(self, **kw):
            mod.created.append(kw)

        def create_chat_completion(self, *, messages, temperature, max_tokens, stream):
            mod.calls.append({"messages": messages, "temperature": temperature, "max_tokens": max_tokens, "stream": stream})
            if len(str(messages)) > 10_000:
                raise ValueError("Requested tokens exceed context window")
            if not stream:
                return {"choices": [{"message": {"role": "assistant", "content": mod.answer}, "finish_reason": "stop"}]}
            return iter([{"choices": [{"delta": {"role": "assistant"}}]}] + [
                {"choices": [{"delta": {"content": w}}]} for w in mod.answer.split(" ")
            ])

    mod.Llama = Llama
    monkeypatch.setitem(sys.modules, "llama_cpp", mod)
    return mod


def test_complete_and_stream(fake_llama, gguf):
    llm = LlamaCppLLM(model_path=str(gguf), n_ctx=1024, n_threads=2, max_tokens=64, chat_format="chatml")
    assert llm.complete(MSGS) == "Hello from GGUF."
    assert "".join(llm.stream(MSGS)) == "HellofromGGUF."
    kw = fake_llama.created[0]
    assert kw["model_path"] == str(gguf) and kw["n_ctx"] == 1024 and kw["n_threads"] == 2 and kw["chat_format"] == "chatml"
    assert len(fake_llama.created) == 1  # loaded once
    assert fake_llama.calls[0]["messages"][0] == {"role": "system", "content": "Be brief."}
    assert fake_llama.calls[1]["stream"] is True


def test_errors(fake_llama, gguf, tmp_path):
    fake_llama.answer = "  "
    with pytest.raises(StageError, match="empty answer"):
        LlamaCppLLM(model_path=str(gguf)).complete(MSGS)
    fake_llama.answer = "ok"
    with pytest.raises(StageError, match="n_ctx"):
        LlamaCppLLM(model_path=str(gguf)).complete([ChatMessage("user", "x" * 20_000)])
    with pytest.raises(ConfigError, match="model_path"):
        LlamaCppLLM().load()
    with pytest.raises(ModelLoadError, match="not found"):
        LlamaCppLLM(model_path=str(tmp_path / "missing.gguf")).load()


def test_missing_package_names_the_extra(monkeypatch, gguf):
    monkeypatch.setitem(sys.modules, "llama_cpp", None)
    with pytest.raises(ImportError, match=r"talkinghead\[llama-cpp\]"):
        LlamaCppLLM(model_path=str(gguf)).load()
