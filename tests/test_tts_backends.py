"""espeak (system library via ctypes) and azure (fake SDK module; live test opt-in) TTS backends."""

from __future__ import annotations

import os
import sys
import types
from datetime import timedelta
from xml.dom import minidom

import numpy as np
import pytest

from talkinghead.backends import espeak as espeak_mod
from talkinghead.backends.azure_tts import (
    AzureTTS, build_ssml, phonemes_from_visemes, words_from_events,
)
from talkinghead.errors import ConfigError, ServiceError, TextError
from talkinghead.values import VoiceProfile


def _espeak_available() -> bool:
    try:
        espeak_mod._library()
        return True
    except Exception:
        return False


needs_espeak = pytest.mark.skipif(not _espeak_available(), reason="libespeak-ng not installed (apt-get install espeak-ng)")


@needs_espeak
def test_espeak_speaks_with_phoneme_and_word_timings():
    tts = espeak_mod.EspeakTTS(rate=160)
    audio = tts.synthesize("Hello there, how are you today?")
    assert audio.sample_rate == 22050 and 1.0 < audio.duration < 4.0
    assert np.abs(audio.samples).max() > 0.05
    assert [w.word for w in audio.words] == ["Hello", "there", "how", "are", "you", "today"]
    ph = audio.phonemes
    assert len(ph) > 10 and ph[0].start == 0.0 and ph[-1].end <= audio.duration + 1e-6
    assert all(a.end <= b.start + 1e-9 for a, b in zip(ph, ph[1:]))  # ordered, no overlap
    assert {"h", "oʊ"} <= {p.phoneme for p in ph}  # IPA symbols
    slow = espeak_mod.EspeakTTS(rate=100).synthesize("Hello there, how are you today?")
    assert slow.duration > audio.duration * 1.2


@needs_espeak
def test_espeak_voices_and_profiles():
    tts = espeak_mod.EspeakTTS()
    voices = tts.voices()
    assert "en-us" in voices and "de" in voices and len(voices) > 50
    german = tts.synthesize("Guten Tag", voice=VoiceProfile(language="de"))
    assert "ɡ" in {p.phoneme for p in german.phonemes}
    with pytest.raises(ConfigError, match="no voice"):
        tts.synthesize("hello", voice=VoiceProfile(voice="xx-nonexistent"))
    with pytest.raises(TextError):
        tts.synthesize(" ... ")
    with pytest.raises(ConfigError):
        espeak_mod.EspeakTTS(rate=1000)


def test_espeak_missing_library_says_apt_get(monkeypatch):
    monkeypatch.setattr(espeak_mod, "_state", {})
    monkeypatch.setattr(espeak_mod, "_find_library", lambda: None)
    monkeypatch.setattr(espeak_mod, "_LIB_NAMES", ("libdefinitely-not-espeak.so",))
    with pytest.raises(ImportError) as info:
        espeak_mod.EspeakTTS().load()
    assert "espeak" in str(info.value) and "apt-get install espeak-ng" in str(info.value.__cause__)


# -- azure --------------------------------------------------------------------------------------
def test_ssml_voice_style_prosody_and_escaping():
    ssml = build_ssml("Fish & chips <now>", voice="en-GB-RyanNeural", rate=1.1, pitch=2, style="cheerful", style_degree=1.5)
    doc = minidom.parseString(ssml)  # well-formed
    speak = doc.documentElement
    assert speak.getAttribute("xml:lang") == "en-GB"
    assert speak.getElementsByTagName("voice")[0].getAttribute("name") == "en-GB-RyanNeural"
    style = speak.getElementsByTagName("mstts:express-as")[0]
    assert style.getAttribute("style") == "cheerful" and style.getAttribute("styledegree") == "1.5"
    prosody = speak.getElementsByTagName("prosody")[0]
    assert prosody.getAttribute("rate") == "+10%" and prosody.getAttribute("pitch") == "+2.0st"
    assert prosody.firstChild.data == "Fish & chips <now>"
    plain = build_ssml("hi", voice="de-DE-KatjaNeural", language="de-DE")
    assert "prosody" not in plain and "express-as" not in plain and 'xml:lang="de-DE"' in plain


def ev(**kw):
    return types.SimpleNamespace(**kw)


def test_event_mapping():
    words = words_from_events(
        [
            ev(audio_offset=500_000, duration=timedelta(milliseconds=300), text="Hello", boundary_type="SpeechSynthesisBoundaryType.Word"),
            ev(audio_offset=8_000_000, duration=timedelta(milliseconds=10), text=",", boundary_type="SpeechSynthesisBoundaryType.Punctuation"),
            ev(audio_offset=9_000_000, duration=timedelta(milliseconds=400), text="world", boundary_type="SpeechSynthesisBoundaryType.Word"),
        ],
        duration=1.2,
    )
    assert [(w.word, round(w.start, 3), round(w.end, 3)) for w in words] == [("Hello", 0.05, 0.35), ("world", 0.9, 1.2)]
    ph = phonemes_from_visemes([ev(audio_offset=2_000_000, viseme_id=21), ev(audio_offset=0, viseme_id=0), ev(audio_offset=5_000_000, viseme_id=2)], 1.0)
    assert [(p.phoneme, p.start, p.end) for p in ph] == [(" ", 0.0, 0.2), ("p", 0.2, 0.5), ("ɑ", 0.5, 1.0)]


class _Signal:
    def __init__(self):
        self.handlers = []

    def connect(self, fn):
        self.handlers.append(fn)


def _fake_sdk(result_reason="SynthesizingAudioCompleted", error=""):
    """A stand-in for azure.cognitiveservices.speech that records SSML and fires events."""
    sdk = types.ModuleType("azure.cognitiveservices.speech")
    sdk.ResultReason = types.SimpleNamespace(SynthesizingAudioCompleted="SynthesizingAudioCompleted", Canceled="Canceled", VoicesListRetrieved="VoicesListRetrieved")
    sdk.SpeechSynthesisOutputFormat = types.SimpleNamespace(Raw24Khz16BitMonoPcm="raw24", Raw16Khz16BitMonoPcm="raw16")
    sdk.spoken = []

    class SpeechConfig:
        def __init__(self, subscription=None, region=None, endpoint=None):
            self.subscription, self.region, self.endpoint = subscription, region, endpoint
            sdk.config = self

        def set_speech_synthesis_output_format(self, fmt):
            self.format = fmt

    class SpeechSynthesizer:
        def __init__(self, speech_config, audio_config):
            assert audio_config is None  # audio stays in memory
            self.synthesis_word_boundary, self.viseme_received = _Signal(), _Signal()

        def speak_ssml_async(self, ssml):
            sdk.spoken.append(ssml)
            for fn in self.synthesis_word_boundary.handlers:
                fn(ev(audio_offset=1_000_000, duration=timedelta(milliseconds=200), text="hi", boundary_type="Word"))
            for fn in self.viseme_received.handlers:
                fn(ev(audio_offset=0, viseme_id=0))
                fn(ev(audio_offset=1_000_000, viseme_id=12))
                fn(ev(audio_offset=2_000_000, viseme_id=6))
            pcm = (np.sin(np.arange(12000) / 10) * 10000).astype("<i2").tobytes()
            details = types.SimpleNamespace(reason="Error", error_details=error)
            res = types.SimpleNamespace(reason=result_reason, audio_data=pcm, cancellation_details=details)
            return types.SimpleNamespace(get=lambda: res)

        def get_voices_async(self):
            voices = [types.SimpleNamespace(short_name="en-US-JennyNeural"), types.SimpleNamespace(short_name="de-DE-KatjaNeural")]
            res = types.SimpleNamespace(reason="VoicesListRetrieved", voices=voices)
            return types.SimpleNamespace(get=lambda: res)

    sdk.SpeechConfig, sdk.SpeechSynthesizer = SpeechConfig, SpeechSynthesizer
    return sdk


@pytest.fixture
def fake_azure(monkeypatch):
    def install(**kw):
        sdk = _fake_sdk(**kw)
        azure = types.ModuleType("azure")
        cs = types.ModuleType("azure.cognitiveservices")
        azure.cognitiveservices, cs.speech = cs, sdk
        monkeypatch.setitem(sys.modules, "azure", azure)
        monkeypatch.setitem(sys.modules, "azure.cognitiveservices", cs)
        monkeypatch.setitem(sys.modules, "azure.cognitiveservices.speech", sdk)
        return sdk

    monkeypatch.delenv("AZURE_SPEECH_KEY", raising=False)
    monkeypatch.delenv("AZURE_SPEECH_REGION", raising=False)
    return install


def test_azure_synthesis_maps_audio_words_and_visemes(fake_azure):
    sdk = fake_azure()
    tts = AzureTTS(key="k", region="westeurope", voice="en-US-AriaNeural", style="cheerful", rate=0.9)
    audio = tts.synthesize("hi there", voice=VoiceProfile(voice="en-US-GuyNeural"))
    assert sdk.config.subscription == "k" and sdk.config.region == "westeurope" and sdk.config.format == "raw24"
    assert 'name="en-US-GuyNeural"' in sdk.spoken[0] and 'style="cheerful"' in sdk.spoken[0] and 'rate="-10%"' in sdk.spoken[0]
    assert audio.sample_rate == 24000 and audio.duration == pytest.approx(0.5)
    assert [(w.word, w.start) for w in audio.words] == [("hi", 0.1)]
    assert [(p.phoneme, p.start, p.end) for p in audio.phonemes] == [(" ", 0.0, 0.1), ("h", 0.1, 0.2), ("i", 0.2, 0.5)]
    assert tts.voices() == ["de-DE-KatjaNeural", "en-US-JennyNeural"]


def test_azure_errors(fake_azure, monkeypatch):
    fake_azure(result_reason="Canceled", error="Connection was closed by the remote host (WebSocket timeout)")
    with pytest.raises(ConfigError, match="AZURE_SPEECH_KEY"):
        AzureTTS().load()
    monkeypatch.setenv("AZURE_SPEECH_KEY", "k")
    with pytest.raises(ConfigError, match="AZURE_SPEECH_REGION"):
        AzureTTS().load()
    with pytest.raises(ServiceError) as info:
        AzureTTS(region="eastus").synthesize("hello")
    assert info.value.transient and "timeout" in str(info.value)
    with pytest.raises(ConfigError):
        AzureTTS(sample_rate=12345)


def test_azure_sdk_missing_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "azure.cognitiveservices.speech", None)
    with pytest.raises(ImportError, match=r"talkinghead\[azure\]"):
        AzureTTS(key="k", region="r").load()


@pytest.mark.skipif(not os.environ.get("AZURE_SPEECH_KEY"), reason="live Azure test: set AZURE_SPEECH_KEY and AZURE_SPEECH_REGION")
def test_azure_live():
    pytest.importorskip("azure.cognitiveservices.speech")
    audio = AzureTTS().synthesize("Hello from the talking head.")
    assert audio.duration > 0.5 and audio.words and audio.phonemes
