"""Avatar.ask, conversation memory and the chat/ask/voices command functions, with fakes."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from talkinghead import Avatar
from talkinghead.cli.converse import EXIT_BAD_INPUT, EXIT_NOT_UNDERSTOOD, EXIT_OK, list_voices, run_ask, run_chat
from talkinghead.conversation import Conversation
from talkinghead.errors import ConfigError, NothingUnderstoodError
from talkinghead.testing import FakeAnimator, FakeASR, FakeLLM, FakeTTS, MemoryWriter, tone_speech
from talkinghead.text import clean_for_speech, cut_at_sentence
from talkinghead.values import Audio


def make_avatar(small_portrait, **kw):
    kw.setdefault("tts", FakeTTS())
    kw.setdefault("llm", FakeLLM())
    return Avatar(small_portrait, animator=FakeAnimator(), writer=MemoryWriter(), **kw)


def test_second_turn_carries_the_first_exchange(small_portrait):
    llm = FakeLLM()
    llm.enqueue("Paris.", "About two million people.")
    av = make_avatar(small_portrait, llm=llm, system_prompt="You are terse.")
    r1 = av.ask("What is the capital of France?")
    r2 = av.ask("How many people live there?")
    assert (r1.answer, r2.answer) == ("Paris.", "About two million people.")
    assert [(m.role, m.content) for m in llm.requests[1]] == [
        ("system", "You are terse."),
        ("user", "What is the capital of France?"),
        ("assistant", "Paris."),
        ("user", "How many people live there?"),
    ]
    assert av.tts.texts == ["Paris.", "About two million people."]
    assert r2.video.n_frames == av.writer.frames.shape[0] > 0
    assert set(r2.timings) >= {"llm", "tts", "video", "total"}
    av.reset()
    av.ask("Hello again")
    assert len(llm.requests[2]) == 2  # system + question


def test_memory_keeps_only_the_last_exchanges(small_portrait):
    llm = FakeLLM()
    av = make_avatar(small_portrait, llm=llm, memory=1)
    for q in ("one two", "three four", "five six"):
        av.ask(q)
    contents = [m.content for m in llm.requests[-1]]
    assert "one two" not in contents and "three four" in contents and contents[-1] == "five six"


def test_spoken_question_is_transcribed(small_portrait):
    asr, llm = FakeASR(), FakeLLM()
    asr.enqueue("what time is it")
    av = make_avatar(small_portrait, asr=asr, llm=llm)
    reply = av.ask(tone_speech(["a", "b", "c"]), language="en")
    assert reply.question == "what time is it" and reply.transcript.language == "en"
    assert llm.requests[0][-1].content == "what time is it" and "asr" in reply.timings


@pytest.mark.parametrize(
    "audio, heard",
    [
        (Audio(np.zeros(16000, np.float32), 16000), None),  # silent: refused before the ASR
        (tone_speech(["a", "b"]), ""),  # the ASR's VAD found no speech
        (tone_speech(["a", "b"]), "um"),  # one word < min_words
    ],
)
def test_nothing_understood_is_refused_before_the_llm(small_portrait, audio, heard):
    asr, llm = FakeASR(), FakeLLM()
    if heard is not None:
        asr.enqueue(heard)
    av = make_avatar(small_portrait, asr=asr, llm=llm, min_words=2)
    with pytest.raises(NothingUnderstoodError, match="nothing was understood"):
        av.ask(audio)
    assert llm.requests == [] and av.conversation.history == ()
    assert len(asr.calls) == (0 if heard is None else 1)


def test_answer_is_cleaned_and_cut(small_portrait):
    llm = FakeLLM()
    llm.enqueue("**Sure!** Here are two ideas:\n- walk on the Moon\n- see Earth 🙂. " + "More words here. " * 50)
    av = make_avatar(small_portrait, llm=llm, max_answer_chars=80)
    reply = av.ask("Give me ideas")
    assert reply.answer.startswith("Sure! Here are two ideas: walk on the Moon. see Earth")
    assert len(reply.answer) <= 80 and "*" not in reply.answer and "🙂" not in reply.answer
    assert av.conversation.history[-1][1] == reply.answer  # memory holds what was said


def test_ask_needs_an_llm_and_an_asr(small_portrait):
    with pytest.raises(ConfigError, match="llm"):
        make_avatar(small_portrait, llm=None).ask("hello")
    with pytest.raises(ConfigError, match="asr"):
        make_avatar(small_portrait).ask(tone_speech(["a", "b"]))


def test_conversation_roundtrip_and_validation():
    conv = Conversation("sys", 2)
    conv.add("q1", "a1")
    conv.add("q2", "a2")
    conv.add("q3", "a3")
    again = Conversation.from_dict(json.loads(json.dumps(conv.to_dict())))
    assert again.history == (("q2", "a2"), ("q3", "a3"))
    assert [m.content for m in again.messages("q4")] == ["sys", "q2", "a2", "q3", "a3", "q4"]
    assert [m.role for m in Conversation("", 0).messages("x")] == ["user"]
    with pytest.raises(ConfigError):
        Conversation("sys", -1)


def test_clean_for_speech_and_cut():
    assert clean_for_speech("# Title\n1. First\n2. `Second` [link](http://x)") == "Title. First. Second link"
    assert clean_for_speech("Plain. Text!") == "Plain. Text!"
    assert cut_at_sentence("One. Two. Three.", 9) == "One. Two."


# -- command functions ------------------------------------------------------------------------
def test_run_chat_text_in_video_paths_out(small_portrait):
    llm = FakeLLM()
    llm.enqueue("Hi!", "Fine.", "Again.")
    av = make_avatar(small_portrait, llm=llm)
    out, err = io.StringIO(), io.StringIO()
    code = run_chat(av, io.StringIO("hello there\n\nhow are you\n/reset\nagain\n/quit\nnever\n"), out, error_stream=err)
    assert code == EXIT_OK
    lines = out.getvalue().splitlines()
    assert [l for l in lines if l.startswith("answer:")] == ["answer: Hi!", "answer: Fine.", "answer: Again."]
    assert sum(l.startswith("video: ") and l.endswith(".mp4") for l in lines) == 3
    assert "forgotten" in err.getvalue()
    assert len(llm.requests[1]) == 4 and len(llm.requests[2]) == 2  # memory, then reset


def test_run_chat_reports_failed_turns_and_goes_on(small_portrait):
    av = make_avatar(small_portrait)
    out = io.StringIO()
    assert run_chat(av, io.StringIO("x" * 6000 + "\nok then\n"), out, json_output=True) == EXIT_OK
    text = out.getvalue().splitlines()
    assert text[0].startswith("error:") and json.loads(text[1])["answer"] == "You said: ok then"
    assert run_chat(make_avatar(small_portrait, llm=None), io.StringIO("hi\n"), io.StringIO()) == EXIT_BAD_INPUT


def test_run_ask(small_portrait, tmp_path):
    asr = FakeASR()
    asr.enqueue("hm")
    av = make_avatar(small_portrait, asr=asr)
    out, err = io.StringIO(), io.StringIO()
    assert run_ask(avatar=av, question="Where are you?", stdout=out, stderr=err) == EXIT_OK
    assert "answer: You said: Where are you?" in out.getvalue()
    wav = tmp_path / "q.wav"
    import soundfile as sf

    sf.write(wav, tone_speech(["a", "b"]).samples, 16000)
    assert run_ask(avatar=av, audio=wav, stdout=out, stderr=err) == EXIT_NOT_UNDERSTOOD
    assert "nothing was understood" in err.getvalue()
    assert run_ask(avatar=av, stdout=out, stderr=err) == EXIT_BAD_INPUT
    assert run_ask(tmp_path / "missing.png", question="hi", llm=FakeLLM(), stdout=out, stderr=err) == EXIT_BAD_INPUT


def test_list_voices():
    out, err = io.StringIO(), io.StringIO()
    assert list_voices("openai", stdout=out, stderr=err) == EXIT_OK
    assert "alloy" in out.getvalue().split()
    assert list_voices("no-such-tts", stdout=out, stderr=err) == EXIT_BAD_INPUT
    assert "no tts backend named" in err.getvalue()
