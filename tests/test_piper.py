import pytest

pytest.importorskip("piper")

from talkinghead.backends.piper import PiperTTS  # noqa: E402
from talkinghead.errors import ModelLoadError, TextError  # noqa: E402


@pytest.fixture(scope="module")
def tts():
    t = PiperTTS()
    t.load()
    return t


@pytest.mark.slow
def test_bundled_voice_with_phoneme_timings(tts):
    audio = tts.synthesize("Hello there, I can talk.")
    assert audio.sample_rate == 22050 and 0.8 < audio.duration < 4
    assert audio.phonemes, "piper should return phoneme alignments"
    # timings are contiguous and cover the whole clip
    assert audio.phonemes[0].start == 0
    for a, b in zip(audio.phonemes, audio.phonemes[1:]):
        assert b.start == pytest.approx(a.end)
    assert audio.phonemes[-1].end == pytest.approx(audio.duration, abs=1e-6)
    assert {"h", "l"} <= {p.phoneme for p in audio.phonemes}


@pytest.mark.parametrize("text", ["", "   ", "?!..."])
def test_unusable_text(tts, text):
    with pytest.raises(TextError):
        tts.synthesize(text)


def test_missing_voice_file(tmp_path):
    with pytest.raises(ModelLoadError, match="not found"):
        PiperTTS(voice=str(tmp_path / "nope.onnx")).load()
