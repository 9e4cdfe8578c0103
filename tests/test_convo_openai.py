"""The openai LLM/ASR/TTS backends, through the real openai SDK, against the local protocol server."""

from __future__ import annotations

import socket

import numpy as np
import pytest

pytest.importorskip("openai")

from talkinghead.backends.openai import client as openai_common
from talkinghead.backends.openai.asr import OpenAIASR
from talkinghead.backends.openai.llm import OpenAILLM
from talkinghead.backends.openai.tts import OPENAI_VOICES, OpenAITTS
from talkinghead.errors import ConfigError, ServiceError, TextError
from talkinghead.testing import tone_speech
from talkinghead.testing.openai_server import OpenAIServer, parse_multipart
from talkinghead.values import ChatMessage, VoiceProfile

MSGS = [ChatMessage("system", "Be brief."), ChatMessage("user", "Hi there")]


@pytest.fixture
def server(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with OpenAIServer() as s:
        yield s


def llm_for(server, **kw):
    kw.setdefault("backoff", 0.001)
    return OpenAILLM(base_url=server.base_url, model="test-model", **kw)


def test_complete_sends_messages_and_returns_answer(server):
    server.enqueue("Hello, astronaut.")
    llm = llm_for(server, temperature=0.2, max_tokens=50)
    assert llm.complete(MSGS) == "Hello, astronaut."
    (req,) = server.chat_requests()
    assert req.json["model"] == "test-model"
    assert req.json["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there"}]
    assert req.json["max_tokens"] == 50 and req.json["temperature"] == 0.2
    assert req.headers["authorization"] == "Bearer not-needed"  # local server, no key configured


def test_stream_yields_pieces_that_join_to_the_answer(server):
    server.enqueue("One small step for a man.")
    pieces = list(llm_for(server).stream(MSGS))
    assert len(pieces) > 3
    assert "".join(pieces) == "One small step for a man."
    assert server.chat_requests()[0].json["stream"] is True


def test_429_then_success_is_retried(server):
    server.fail(429, 429)
    server.enqueue("finally")
    sleeps = []
    llm = llm_for(server, retries=3, backoff=0.5, max_backoff=8)
    real = openai_common.with_retries

    def spy(call, **kw):
        return real(call, **{**kw, "sleep": sleeps.append})

    import talkinghead.backends.openai.llm as mod

    mod.oc.with_retries, saved = spy, mod.oc.with_retries
    try:
        assert llm.complete(MSGS) == "finally"
    finally:
        mod.oc.with_retries = saved
    assert [r.status for r in server.chat_requests()] == [429, 429, 200]
    # exponential back-off: 0.5 s then 1 s (plus up to 10 % jitter)
    assert len(sleeps) == 2 and 0.5 <= sleeps[0] <= 0.55 and 1.0 <= sleeps[1] <= 1.1


def test_persistent_429_raises_transient_service_error(server):
    server.fail(*[429] * 5)
    with pytest.raises(ServiceError) as info:
        llm_for(server, retries=2).complete(MSGS)
    assert info.value.transient and "429" in str(info.value) and "3 attempts" in str(info.value)
    assert len(server.chat_requests()) == 3


def test_500_is_retried_then_transient(server):
    server.fail(500, 500)
    with pytest.raises(ServiceError) as info:
        llm_for(server, retries=1).complete(MSGS)
    assert info.value.transient and "500" in str(info.value)


def test_timeout_is_retried_then_transient(server):
    server.slow(0.8, count=2)
    with pytest.raises(ServiceError) as info:
        llm_for(server, retries=1, timeout=0.2).complete(MSGS)
    assert info.value.transient and "did not answer in time" in str(info.value)
    assert len(server.chat_requests()) == 2


def test_unreachable_endpoint_is_transient():
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    llm = OpenAILLM(base_url=f"http://127.0.0.1:{port}/v1", retries=1, backoff=0.001, timeout=2)
    with pytest.raises(ServiceError) as info:
        llm.complete(MSGS)
    assert info.value.transient and "cannot reach" in str(info.value) and str(port) in str(info.value)


def test_wrong_key_is_permanent_and_names_the_variable(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with OpenAIServer(api_key="right") as s:
        llm = OpenAILLM(base_url=s.base_url, api_key="wrong", retries=3, backoff=0.001)
        with pytest.raises(ServiceError) as info:
            llm.complete(MSGS)
        assert not info.value.transient and "OPENAI_API_KEY" in str(info.value)
        assert len(s.chat_requests()) == 1  # not retried
        assert OpenAILLM(base_url=s.base_url, api_key="right").complete(MSGS)


def test_missing_api_key_names_the_variable(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        OpenAILLM().load()
    monkeypatch.delenv("MY_KEY", raising=False)
    with pytest.raises(ConfigError, match="MY_KEY"):
        OpenAITTS(base_url="https://example.invalid/v1", api_key_env="MY_KEY").load()
    with pytest.raises(ConfigError, match="AZURE_OPENAI_API_KEY"):
        OpenAIASR(base_url="https://x.openai.azure.com", api_version="2024-10-21").load()


def test_key_from_environment_is_sent(monkeypatch, server):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    llm_for(server).complete(MSGS)
    assert server.chat_requests()[0].headers["authorization"] == "Bearer sk-from-env"


def test_empty_answer_raises(server):
    server.enqueue("   ")
    with pytest.raises(ServiceError, match="empty answer"):
        llm_for(server).complete(MSGS)
    server.enqueue("")
    with pytest.raises(ServiceError, match="empty answer"):
        list(llm_for(server).stream(MSGS))


def test_unknown_route_is_permanent(server):
    llm = OpenAILLM(base_url=server.base_url.replace("/v1", "/nope"), retries=3, backoff=0.001)
    with pytest.raises(ServiceError) as info:
        llm.complete(MSGS)
    assert not info.value.transient and "404" in str(info.value)


def test_bad_config():
    with pytest.raises(ConfigError):
        OpenAILLM(retries=-1)
    with pytest.raises(ConfigError):
        OpenAITTS(response_format="mp3")


# -- ASR ----------------------------------------------------------------------------------------
def test_transcription_uploads_wav_and_parses_words(server):
    server.enqueue_transcripts("what is the time")
    asr = OpenAIASR(base_url=server.base_url, language="en")
    tr = asr.transcribe(tone_speech(["a", "b", "c"], sample_rate=22050))
    assert tr.text == "what is the time" and tr.language == "en"
    assert [w.word for w in tr.words] == ["what", "is", "the", "time"]
    req = server.requests[-1]
    assert req.path.endswith("/audio/transcriptions")
    assert req.form["model"] == "whisper-1" and req.form["language"] == "en"
    assert req.form["response_format"] == "verbose_json"
    wav = req.files["file"]
    assert wav[:4] == b"RIFF" and int.from_bytes(wav[24:28], "little") == 16000


def test_transcription_retries_429(server):
    server.fail(429)
    assert OpenAIASR(base_url=server.base_url, backoff=0.001).transcribe(tone_speech(["a"])).text


def test_parse_multipart_roundtrip():
    body = (
        b"--XX\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n"
        b"--XX\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n"
        b"Content-Type: audio/wav\r\n\r\n\x00\x01\r\n\x02\r\n--XX--\r\n"
    )
    form, files = parse_multipart(body, "multipart/form-data; boundary=XX")
    assert form == {"model": "whisper-1"} and files == {"file": b"\x00\x01\r\n\x02"}


# -- TTS ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["wav", "pcm"])
def test_speech_decodes_wav_and_pcm(server, fmt):
    tts = OpenAITTS(base_url=server.base_url, response_format=fmt, voice="nova", speed=1.25)
    audio = tts.synthesize("one two three four")
    assert audio.sample_rate == 24000
    assert audio.duration == pytest.approx(4 * 0.4, abs=0.01)  # tone_speech: 0.4 s per word
    assert np.abs(audio.samples).max() > 0.1
    req = server.requests[-1].json
    assert req["voice"] == "nova" and req["input"] == "one two three four" and req["speed"] == 1.25
    assert req["response_format"] == fmt


def test_speech_voice_profile_and_voices(server):
    tts = OpenAITTS(base_url=server.base_url)
    tts.synthesize("hello there", voice=VoiceProfile(voice="onyx", reference=tone_speech(["x"])))
    assert server.requests[-1].json["voice"] == "onyx"
    assert list(tts.voices()) == list(OPENAI_VOICES)
    assert OpenAITTS(voices_list=["a", "b"]).voices() == ["a", "b"]
    with pytest.raises(TextError):
        tts.synthesize("   ")
