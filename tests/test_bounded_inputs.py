"""Bounded memory and honest refusals (issue 8 §4, §5, §8): audio length checked before decoding,
long text synthesised in bounded pieces, text a voice cannot speak refused before synthesis, and
silence rendered by the real viseme animator with the mouth closed."""

from __future__ import annotations

import io
import os
import threading
import tracemalloc

import numpy as np
import pytest
import soundfile as sf

from talkinghead import io as thio
from talkinghead.errors import AudioError, TextError
from talkinghead.io import load_audio
from talkinghead.text import (
    MAX_SENTENCE_CHARS,
    UnspeakableTextError,
    check_scripts,
    detect_scripts,
    language_scripts,
)
from talkinghead.values import Audio, PhonemeTiming, WordTiming


# -- audio: the length is checked before decoding -----------------------------------------------------
def _silent_flac(path, seconds: float, rate: int = 8000) -> None:
    block = np.zeros(rate * 10, np.int16)
    with sf.SoundFile(path, "w", samplerate=rate, channels=1, format="FLAC", subtype="PCM_16") as f:
        for _ in range(int(seconds // 10)):
            f.write(block)


def _peak_alloc(fn) -> tuple[int, BaseException | None]:
    tracemalloc.start()
    error = None
    try:
        fn()
    except BaseException as exc:  # noqa: BLE001 - returned to the test
        error = exc
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak, error


def test_an_over_long_flac_is_refused_from_its_header_in_little_memory(tmp_path):
    path = tmp_path / "long.flac"
    _silent_flac(path, 20 * 60)  # 20 minutes: 9.6 M samples (38 MB as float32) if decoded
    peak, error = _peak_alloc(lambda: load_audio(path))
    assert isinstance(error, AudioError) and "1200 s long, over the 600 s limit" in str(error)
    assert peak < 4_000_000, peak  # the old loader decoded everything before checking
    peak, error = _peak_alloc(lambda: load_audio(path.read_bytes()))
    assert isinstance(error, AudioError) and peak < 4_000_000 + path.stat().st_size


def test_a_wav_just_inside_the_limit_is_read_in_blocks(tmp_path, monkeypatch):
    monkeypatch.setattr(thio, "MAX_AUDIO_SECONDS", 3.0)
    rate = 8000
    t = np.arange(int(2.9 * rate)) / rate
    stereo = (np.stack([np.sin(2 * np.pi * 200 * t)] * 6, axis=1) * 0.5 * 32767).astype(np.int16)
    sf.write(tmp_path / "six.wav", stereo, rate, subtype="PCM_16")
    audio = load_audio(tmp_path / "six.wav")
    assert audio.samples.ndim == 1 and len(audio.samples) == len(t)
    assert abs(float(audio.samples.max()) - 0.5) < 0.01


def _m4a(path, seconds: float, rate: int = 16000) -> None:
    """AAC in MP4: a format libsndfile does not read (it reads MP3), so PyAV decodes it."""
    av = pytest.importorskip("av")
    with av.open(str(path), "w", format="mp4") as out:
        s = out.add_stream("aac", rate=rate)
        s.layout = "mono"
        n = 0
        while n < seconds * rate:
            block = (0.2 * np.sin(np.arange(n, n + 1024) * 0.05)).astype(np.float32)[None]
            frame = av.AudioFrame.from_ndarray(block, format="fltp", layout="mono")
            frame.sample_rate = rate
            frame.pts = n
            n += 1024
            for p in s.encode(frame):
                out.mux(p)
        for p in s.encode():
            out.mux(p)


def test_pyav_checks_the_container_duration_before_decoding(tmp_path, monkeypatch):
    _m4a(tmp_path / "a.m4a", 5.0)
    monkeypatch.setattr(thio, "MAX_AUDIO_SECONDS", 2.0)
    decoded = []
    real = thio._read_with_av

    def spy(fh, source):
        decoded.append(source)
        return real(fh, source)

    monkeypatch.setattr(thio, "_read_with_av", spy)
    with pytest.raises(AudioError, match="5 s long, over the 2 s limit"):
        load_audio(tmp_path / "a.m4a")
    assert decoded  # it went through PyAV, which refused from the header


def test_pyav_stops_decoding_at_the_limit_when_the_header_lies(tmp_path, monkeypatch):
    _m4a(tmp_path / "a.m4a", 5.0)
    monkeypatch.setattr(thio, "MAX_AUDIO_SECONDS", 2.0)
    monkeypatch.setattr(thio, "_av_header_seconds", lambda container, stream: 1.0)  # claims 1 s
    with pytest.raises(AudioError, match="longer than the 2 s limit"):
        load_audio(tmp_path / "a.m4a")
    monkeypatch.setattr(thio, "_av_header_seconds", lambda container, stream: None)  # no length at all
    with pytest.raises(AudioError, match="longer than the 2 s limit"):
        load_audio(tmp_path / "a.m4a")


def test_a_fifo_is_refused_instead_of_blocking(tmp_path):
    fifo = tmp_path / "voice.wav"
    os.mkfifo(fifo)
    result = []
    worker = threading.Thread(target=lambda: result.append(pytest.raises(AudioError, load_audio, fifo)), daemon=True)
    worker.start()
    worker.join(timeout=30)
    if worker.is_alive():  # the old loader blocked forever reading the fifo; unblock it
        with open(fifo, "wb"):
            pass
        pytest.fail("load_audio blocked on a fifo")
    assert "not a regular file" in str(result[0].value)


@pytest.mark.parametrize(
    "value, match",
    [
        ((np.zeros(100), 10_000_000), "over the 192000 Hz limit"),
        ((np.zeros(100), "fast"), "whole number"),
        ((np.zeros(100, bool), 16000), "integer or float"),
        ((np.zeros((3, 4, 5)), 16000), "1-D or 2-D"),
        ((np.zeros((100, 0)), 16000), "no channels|empty"),
    ],
)
def test_bad_sample_arrays_and_rates(value, match):
    with pytest.raises(AudioError, match=match):
        load_audio(value)


def test_integer_stereo_arrays_are_scaled_before_downmixing():
    pcm = (np.full((1000, 2), 0.5) * 32767).astype(np.int16)
    assert abs(float(load_audio((pcm, 16000)).samples.max()) - 0.5) < 1e-3


# -- long text in bounded pieces --------------------------------------------------------------------
def test_audio_concatenate_keeps_timings_continuous():
    a = Audio(np.zeros(100, np.float32), 100, phonemes=(PhonemeTiming("a", 0.0, 1.0),), words=(WordTiming("x", 0, 1),))
    b = Audio(np.ones(50, np.float32), 100, phonemes=(PhonemeTiming("b", 0.0, 0.5),), words=(WordTiming("y", 0, 0.5),))
    c = Audio.concatenate([a, b])
    assert c.duration == 1.5 and c.phonemes[1] == PhonemeTiming("b", 1.0, 1.5) and c.words[1] == WordTiming("y", 1.0, 1.5)
    with pytest.raises(AudioError):
        Audio.concatenate([a, Audio(np.zeros(10, np.float32), 200)])


RUN_ON = " ".join(["the astronaut walked slowly across the grey dust and"] * 13)  # ~700 chars, no punctuation


@pytest.mark.slow
def test_piper_synthesises_a_run_on_sentence_in_bounded_pieces():
    pytest.importorskip("piper")
    from talkinghead.backends.piper import PiperTTS

    tts = PiperTTS()
    tts.load()
    calls = []
    real = tts._voice.synthesize

    def spy(text, *args, **kwargs):
        calls.append(len(text))
        return real(text, *args, **kwargs)

    tts._voice.synthesize = spy
    audio = tts.synthesize(RUN_ON)
    assert len(calls) >= 5 and max(calls) <= tts.max_chars == 150  # one 700-char call before
    starts = [p.start for p in audio.phonemes]
    assert starts == sorted(starts) and audio.phonemes[-1].end == pytest.approx(audio.duration, abs=0.05)
    assert audio.duration > 30


def test_espeak_synthesises_long_text_in_bounded_pieces(monkeypatch):
    from talkinghead.backends import espeak as espeak_mod

    tts = espeak_mod.EspeakTTS()
    try:
        tts.load()
    except ImportError:
        pytest.skip("libespeak-ng is not installed")
    calls = []
    real = espeak_mod.EspeakTTS._synthesize_piece
    monkeypatch.setattr(espeak_mod.EspeakTTS, "_synthesize_piece", lambda self, t, n: calls.append(len(t)) or real(self, t, n))
    word = "x" * 700  # a single 700-letter "word"
    audio = tts.synthesize(f"{RUN_ON} {word}")
    assert len(calls) >= 4 and max(calls) <= MAX_SENTENCE_CHARS
    ends = [w.end for w in audio.words]
    assert ends == sorted(ends) and ends[-1] <= audio.duration + 1e-6
    assert audio.words[0].word == "the" and audio.words[-1].start > audio.duration / 2


# -- writing systems ----------------------------------------------------------------------------------
def test_detect_scripts_counts_letters_only():
    assert detect_scripts("Hello, мир! 123 🙂") == {"Latn": 5, "Cyrl": 3}
    assert detect_scripts("مرحبا 你好 こんにちは カタカナ 한국") == {"Arab": 5, "Hani": 2, "Hira": 5, "Kana": 4, "Hang": 2}
    assert detect_scripts("ＡＢＣ") == {"Latn": 3}  # full-width Latin


def test_language_scripts():
    assert language_scripts("en-us") == {"Latn"}
    assert language_scripts("ru_RU") == {"Cyrl", "Latn"}
    assert language_scripts("cmn") >= {"Hani"} and language_scripts("cmn-latn-pinyin") == {"Latn"}
    assert language_scripts("ja") >= {"Hani", "Hira", "Kana"}
    assert language_scripts(None) is None


def test_check_scripts_refuses_words_but_allows_symbol_letters():
    latin = language_scripts("en")
    check_scripts("π is about 3.14, café, Zoë", latin)
    for text, script in [("hello мир", "Cyrl"), ("مرحبا", "Arab"), ("你好", "Hani"), ("中", "Hani"), ("γεια σου", "Grek")]:
        with pytest.raises(UnspeakableTextError) as info:
            check_scripts(text, latin, voice="the voice X")
        assert info.value.scripts == (script,) and "the voice X cannot speak" in str(info.value)
    check_scripts("anything", None)  # unknown: no check


@pytest.mark.slow
@pytest.mark.parametrize("text, script, espeak_voice", [("مرحبا بالعالم", "Arabic", "'ar'"), ("你好，世界。", "Chinese", "'cmn'")])
def test_default_voice_refuses_arabic_and_chinese_before_synthesis_naming_who_can(small_portrait, text, script, espeak_voice):
    pytest.importorskip("piper")
    from talkinghead import Avatar, ModelCache
    from talkinghead.backends.piper import PiperTTS
    from talkinghead.testing import FakeAnimator, MemoryWriter

    calls = []

    class Spy(PiperTTS):
        def _synthesize_piece(self, *a, **k):
            calls.append(a)
            return super()._synthesize_piece(*a, **k)

    av = Avatar(small_portrait, tts=Spy(), animator=FakeAnimator(), writer=MemoryWriter(), cache=ModelCache())
    with pytest.raises(TextError) as info:
        av.say(text)
    message = str(info.value)
    assert f"cannot speak {script}" in message and "en_US-joe-medium" in message
    if language_scripts("ar") and _espeak_present():
        assert espeak_voice in message
    assert "huggingface.co/rhasspy/piper-voices" in message  # a piper voice for the language
    assert calls == []  # refused before synthesis
    assert av.say("Hello there.").n_frames > 0  # English still speaks


def _espeak_present() -> bool:
    from talkinghead.backends.espeak import EspeakTTS

    try:
        EspeakTTS().load()
    except ImportError:
        return False
    return True


def test_espeak_voices_speak_their_own_script_and_refuse_others():
    if not _espeak_present():
        pytest.skip("libespeak-ng is not installed")
    from talkinghead.backends.espeak import EspeakTTS
    from talkinghead.values import VoiceProfile

    assert EspeakTTS(voice="ar").synthesize("مرحبا بالعالم").duration > 0.3
    assert EspeakTTS(voice="ru").synthesize("привет, Hello").duration > 0.3  # Latin names are read too
    with pytest.raises(UnspeakableTextError, match="Chinese"):
        EspeakTTS().synthesize("你好世界")
    assert EspeakTTS().synthesize("你好", voice=VoiceProfile(voice="cmn")).duration > 0.2
    # after the cmn voice, espeak emits an empty word event at pauses: it is not a word
    assert [w.word for w in EspeakTTS().synthesize("Hello there, how are you?").words] == ["Hello", "there", "how", "are", "you"]


@pytest.mark.slow
def test_cli_refuses_unspeakable_text_with_exit_1_and_no_file(portrait_path, tmp_path):
    pytest.importorskip("piper")
    from talkinghead.cli import main

    out, err = io.StringIO(), io.StringIO()
    code = main(["say", "-i", str(portrait_path), "-t", "مرحبا بالعالم", "-o", str(tmp_path / "a.mp4"), "-q"], out=out, err=err)
    assert code == 1 and err.getvalue().startswith("error:") and "Arabic" in err.getvalue()
    assert list(tmp_path.iterdir()) == []


# -- silence with the real animator ---------------------------------------------------------------------
def test_five_seconds_of_silence_render_five_seconds_with_a_closed_mouth(portrait_path):
    pytest.importorskip("mediapipe")
    from talkinghead import Avatar, ModelCache
    from talkinghead.backends.viseme.timeline import compute_drive
    from talkinghead.testing import MemoryWriter, tone_speech

    silence = Audio(np.zeros(5 * 16000, np.float32), 16000)
    av = Avatar(portrait_path, animator="viseme", writer=MemoryWriter(), cache=ModelCache(), fps=20)
    video = av.speak(silence)
    assert video.n_frames == 100 and video.duration == pytest.approx(5.0)
    drive = compute_drive(silence, 20, 100)
    assert float(np.max(drive["jaw"])) == 0.0  # the mouth stays closed the whole time
    speech = compute_drive(tone_speech(["one", "two", "three"]), 20, 24)
    assert float(np.max(speech["jaw"])) > 0.1  # (and opens for speech)
