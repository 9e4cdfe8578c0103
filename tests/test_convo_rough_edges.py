"""Conversation rough edges (issue 8 §9): missing audio files, a per-turn deadline against a hanging
LLM, ``chat`` without the openai extra, its hint, ``voices`` for a system library, the ASR beam."""

from __future__ import annotations

import io
import sys
import time

import pytest

from talkinghead import Avatar, ModelCache
from talkinghead.cli import main
from talkinghead.deadline import attempt_timeout, deadline, remaining
from talkinghead.errors import AudioError, DeadlineError, MissingDependencyError
from talkinghead.testing import FakeAnimator, FakeASR, FakeLLM, FakeTTS, MemoryWriter


def make(portrait, **kw):
    kw.setdefault("tts", FakeTTS())
    kw.setdefault("animator", FakeAnimator())
    kw.setdefault("writer", MemoryWriter())
    return Avatar(portrait, cache=ModelCache(), **kw)


def run(*argv, stdin: str | None = None, monkeypatch=None):
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


# -- ask("missing.wav") ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["missing.wav", "  recordings/q.flac ", "question.MP3"])
def test_a_missing_audio_file_is_an_audio_error_not_a_question(small_portrait, tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    llm = FakeLLM()
    av = make(small_portrait, llm=llm, asr=FakeASR())
    with pytest.raises(AudioError, match="not found"):
        av.ask(name)
    assert llm.requests == []  # the file name never reached the LLM


def test_text_that_mentions_a_file_is_still_a_question(small_portrait):
    llm = FakeLLM()
    av = make(small_portrait, llm=llm)
    reply = av.ask("How do I open a .wav file?")
    assert llm.requests[-1][-1].content == "How do I open a .wav file?" and reply.answer


def test_text_only_never_reads_a_file(small_portrait, tmp_path, monkeypatch):
    # a server passes user text with text_only=True: an existing audio file's name stays a question
    monkeypatch.chdir(tmp_path)
    (tmp_path / "secret.wav").write_bytes(b"RIFF")
    llm, asr = FakeLLM(), FakeASR()
    av = make(small_portrait, llm=llm, asr=asr)
    av.ask("secret.wav", text_only=True)
    assert llm.requests[-1][-1].content == "secret.wav" and asr.calls == []


# -- the turn's deadline -----------------------------------------------------------------------------
def test_deadline_scope_is_per_context_and_nests_to_the_earlier_end():
    assert remaining() is None and attempt_timeout(30.0) == 30.0
    with deadline(5.0):
        assert 4.0 < remaining() <= 5.0 and attempt_timeout(30.0) <= 5.0
        with deadline(60.0):  # cannot extend the outer one
            assert remaining() <= 5.0
        with deadline(1.0):
            assert remaining() <= 1.0
    assert remaining() is None


@pytest.mark.slow
def test_a_hanging_llm_is_bounded_by_the_turn_deadline(small_portrait, monkeypatch):
    pytest.importorskip("openai")
    from talkinghead.testing.openai_server import OpenAIServer

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with OpenAIServer() as server:
        server.slow(30.0, count=10)  # every request hangs for 30 s
        llm = ("openai", {"base_url": server.base_url, "model": "m", "timeout": 30.0, "retries": 3, "backoff": 0.1})
        tts = FakeTTS()
        av = make(small_portrait, llm=llm, tts=tts, turn_timeout=2.0)
        t0 = time.monotonic()
        with pytest.raises(DeadlineError, match="deadline of 2 s"):
            av.ask("Are you there?")
        took = time.monotonic() - t0
        # without the deadline: 4 attempts × 30 s; with it, about 2 s (generous bound for a loaded CPU)
        assert took < 12.0, took
        assert tts.texts == [] and av.conversation.history == ()


def test_a_turn_that_fits_its_deadline_answers(small_portrait, monkeypatch):
    pytest.importorskip("openai")
    from talkinghead.testing.openai_server import OpenAIServer

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with OpenAIServer(answers=["Yes, I am here."]) as server:
        server.slow(0.3)
        av = make(small_portrait, llm=("openai", {"base_url": server.base_url, "model": "m"}), turn_timeout=20.0)
        assert av.ask("Are you there?").answer == "Yes, I am here."


def test_turn_timeout_is_validated(small_portrait):
    from talkinghead.errors import ConfigError

    with pytest.raises(ConfigError, match="turn_timeout"):
        make(small_portrait, turn_timeout=0)
    assert make(small_portrait, turn_timeout=None).turn_timeout is None


# -- chat and voices hints --------------------------------------------------------------------------
def test_chat_without_the_openai_extra_fails_once_and_non_zero(fakes, portrait_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "openai", None)  # as if the extra were not installed
    code, out, err = run(
        "chat", "-i", str(portrait_path), "--tts", "fake", "--animator", "fake", "--writer", "memory", "--asr", "fake",
        stdin="hello there\nhow are you\nand now?\n", monkeypatch=monkeypatch,
    )
    assert code != 0
    assert err.count("error:") == 1 and "pip install 'talkinghead[openai]'" in err


def test_chat_stops_on_an_error_no_question_can_avoid(small_portrait):
    from talkinghead.cli.converse import run_chat

    class NoKeyLLM(FakeLLM):
        def complete(self, messages):
            from talkinghead.errors import ServiceError

            raise ServiceError("llm", "fake", "401: check OPENAI_API_KEY", transient=False)

    out = io.StringIO()
    code = run_chat(make(small_portrait, llm=NoKeyLLM()), io.StringIO("one\ntwo\nthree\n"), out)
    assert code == 1 and out.getvalue().count("error:") == 1


def test_chat_hint_names_flags_that_exist(small_portrait):
    from talkinghead.cli import build_parser
    from talkinghead.cli.converse import run_chat

    out = io.StringIO()
    assert run_chat(make(small_portrait), io.StringIO(""), out) == 2
    hint = out.getvalue()
    assert "--llm-option" not in hint and "--set llm.base_url" in hint
    build_parser().parse_args(["chat", "-i", "x.png", "--llm", "openai", "--set", "llm.base_url=http://h/v1"])


def test_voices_for_a_missing_system_library_names_the_system_package(monkeypatch):
    from talkinghead.backends import espeak as espeak_mod

    monkeypatch.setattr(espeak_mod, "_state", {})
    monkeypatch.setattr(espeak_mod, "_find_library", lambda: None)
    monkeypatch.setattr(espeak_mod, "_LIB_NAMES", ("libdefinitely-not-espeak.so",))
    code, out, err = run("voices", "--tts", "espeak")
    assert code != 0
    assert "apt-get install espeak-ng" in err and "brew install espeak-ng" in err
    assert "pip install" not in err
    with pytest.raises(MissingDependencyError, match="apt-get install espeak-ng"):
        espeak_mod.EspeakTTS().voices()


# -- the ASR default --------------------------------------------------------------------------------
def test_bundled_asr_decodes_with_beam_search_by_default():
    from talkinghead.backends.faster_whisper import FasterWhisperASR

    assert FasterWhisperASR().beam_size == 5  # greedy (1) misheard "teal" 5/40 times (bench/bench_asr_beam.py)
    asr = FasterWhisperASR(short_window_s=0)  # faster-whisper's own path (the short window passes it to generate)

    seen = {}

    class Model:
        model = type("M", (), {"is_multilingual": False})()

        def transcribe(self, samples, **kw):
            seen.update(kw)
            return iter(()), type("Info", (), {"language": "en"})()

    asr._model = Model()
    from talkinghead.testing import tone_speech

    asr.transcribe(tone_speech(["a"]))
    assert seen["beam_size"] == 5
