"""The bank animator on the SadTalker source.

Fast tier: the tiny seeded networks of ``talkinghead.testing.nets`` (the contract with the direct
render, build, play, export/import of a pack, streaming-size chunks). Slow tier: the official
full-size checkpoint layouts filled deterministically — the bank builds, and a pack plays loading
only the parameter networks (the generator costs seconds per frame here, so K is 3)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")
pytest.importorskip("mediapipe")
pytest.importorskip("cv2")

from sadtalker_weights import write_weights_dir  # noqa: E402

from talkinghead.backends.bank import BankAnimator, read_pack  # noqa: E402
from talkinghead.backends.sadtalker import SadTalkerAnimator  # noqa: E402
from talkinghead.io import load_image  # noqa: E402
from talkinghead.stages import frame_count  # noqa: E402
from talkinghead.testing import FakeTTS, nets, tone_speech  # noqa: E402
from talkinghead.values import Portrait  # noqa: E402


@pytest.fixture(scope="module")
def wdir(tmp_path_factory):
    return write_weights_dir(tmp_path_factory.mktemp("bank_st_weights"))


@pytest.fixture(scope="module")
def portrait(portrait_path):
    return Portrait(load_image(portrait_path).image)


def _tiny(**config) -> SadTalkerAnimator:
    return SadTalkerAnimator.from_networks(nets.tiny_sadtalker(), seed=0, **config)


@pytest.fixture(scope="module")
def tiny_built(portrait, tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny_banks")
    bank = BankAnimator(source=_tiny(), k=6, tts=FakeTTS(), sentences=2, bank_dir=folder)
    return bank, bank.prepare(portrait)


@pytest.mark.slow
def test_tiny_contract_with_the_direct_render(portrait):
    st = _tiny()
    prepared = st.prepare(portrait)
    play = st.bank_restore(st.bank_state(prepared))
    audio = tone_speech(["one", "two"])
    params = st.bank_parameters(play, audio, fps=10)
    assert params.shape == (frame_count(audio.duration, 10), 45) and params.dtype == np.float32
    direct = np.concatenate([c.frames for c in st.animate(prepared, audio, fps=10)])
    banked = st.bank_compose(play, st.bank_render(prepared, params))
    assert banked.shape == direct.shape == (len(params), 256, 256, 3)
    assert np.abs(banked.astype(int) - direct).max() <= 1


@pytest.mark.slow
def test_tiny_bank_builds_and_plays(tiny_built, portrait, tmp_path):
    bank, prepared = tiny_built
    pack = prepared.pack
    assert pack.k == 6 and pack.states.shape == (6, 45) and pack.frames.shape[1:] == (128, 128, 3)
    assert pack.manifest["source"] == "sadtalker" and pack.manifest["dims"] == 45
    audio = tone_speech(["hello", "bank"])
    chunks = list(bank.animate(prepared, audio, fps=25))
    frames = np.concatenate([c.frames for c in chunks])
    assert frames.shape == (frame_count(audio.duration, 25), 256, 256, 3)
    assert [c.start for c in chunks] == list(range(0, len(frames), bank.chunk_frames))
    # the same pack, exported and played by another bank animator, gives the same frames
    out = bank.export(prepared, tmp_path / "tiny.thbank")
    other = BankAnimator(source=_tiny(), k=6, pack=out, build="never")
    again = np.concatenate([c.frames for c in other.animate(other.prepare(portrait), audio, fps=25)])
    assert np.array_equal(frames, again)


@pytest.mark.slow
def test_tiny_full_mode_pastes_back(portrait, tmp_path):
    st = SadTalkerAnimator.from_networks(nets.tiny_sadtalker(coeff_nc=73), preprocess="full", seed=0)
    bank = BankAnimator(source=st, k=3, tts=FakeTTS(), sentences=1, bank_dir=tmp_path)
    prepared = bank.prepare(portrait)
    assert {"portrait", "paste_box"} <= set(prepared.pack.state)
    frames = np.concatenate([c.frames for c in bank.animate(prepared, tone_speech(["hi"]), fps=10)])
    assert frames.shape[1:] == portrait.image.shape
    # far from the face the portrait is untouched
    assert np.array_equal(frames[:, :8, :8], np.broadcast_to(portrait.image[:8, :8], frames[:, :8, :8].shape))


@pytest.fixture(scope="module")
def built(wdir, portrait, tmp_path_factory):
    folder = tmp_path_factory.mktemp("banks")
    bank = BankAnimator(source="sadtalker", source_config={"weights_dir": str(wdir)}, k=3, tts=FakeTTS(),
                        sentences=1, bank_dir=folder)
    path = bank.build(portrait)
    return bank, path


@pytest.mark.slow
def test_contract_with_the_direct_render(wdir, portrait):
    """compose(render(parameters)) is the animator's own frame for the same audio."""
    st = SadTalkerAnimator(weights_dir=str(wdir))
    prepared = st.prepare(portrait)
    play = st.bank_restore(st.bank_state(prepared))
    audio = tone_speech(["hi"])  # 0.4 s
    params = st.bank_parameters(play, audio, fps=5)
    assert params.shape == (frame_count(audio.duration, 5), 45) and np.isfinite(params).all()
    direct = np.concatenate([c.frames for c in st.animate(prepared, audio, fps=5)])
    banked = st.bank_compose(play, st.bank_render(prepared, params))
    assert banked.shape == direct.shape
    assert np.abs(banked.astype(int) - direct.astype(int)).max() <= 1


@pytest.mark.slow
def test_bank_builds(built, portrait):
    _, path = built
    pack = read_pack(path)
    assert pack.k == 3 and pack.states.shape == (3, 45) and pack.frames.shape == (3, 256, 256, 3)
    m = pack.manifest
    assert m["source"] == "sadtalker" and m["portrait"] == portrait.key and m["fingerprint"]["size"] == 256
    assert set(pack.state) == {"source_coeff", "kp_canonical", "out_size"}
    assert pack.frames.std() > 1  # rendered images, not blanks


@pytest.mark.slow
def test_pack_plays_without_the_renderer(built, wdir, portrait):
    """A pack plays with ExpNet, PoseVAE and MappingNet only: the generator is never loaded."""
    _, path = built
    # the parameter networks run on onnxruntime (param_runtime="auto"): their graphs go to a test folder
    config = {"weights_dir": str(wdir), "onnx_dir": str(path.parent / "onnx")}
    player = BankAnimator(source="sadtalker", source_config=config, k=3, pack=path, build="never")
    prepared = player.prepare(portrait)
    audio = tone_speech(["one", "two"])
    chunks = list(player.animate(prepared, audio, fps=25))
    frames = np.concatenate([c.frames for c in chunks])
    assert frames.shape == (frame_count(audio.duration, 25), 256, 256, 3)
    assert player.source._nets is None and set(player.source._light_nets) == {"exp", "pose", "mapping"}
    assert (path.parent / "onnx" / "mapping.onnx").is_file()
    # frames whose parameters sit on a bank state are that bank frame; the others come from a pair
    params = player.source.bank_parameters(prepared.play, audio, fps=25)
    a, b, t = prepared.player.match(params)
    assert ((a >= 0) & (a < 3) & (b >= 0) & (b < 3) & (t >= 0) & (t <= 1)).all()
    for i in np.flatnonzero(t <= 0.02):
        assert np.array_equal(frames[i], prepared.pack.frames[a[i]])


@pytest.mark.slow
def test_tiny_parameter_stream_equals_the_whole_clip(portrait):
    """The early first block (one PoseVAE chunk) and the rest are the clip's own parameters."""
    st = _tiny()
    play = st.bank_restore(st.bank_state(st.prepare(portrait)))
    audio = tone_speech(["a", "b", "c", "d", "e", "f", "g"])  # 2.8 s: 70 frames at 25 fps
    whole = st.bank_parameters(play, audio, fps=25)
    blocks = list(st.bank_parameter_stream(play, audio, fps=25))
    assert [len(b) for b in blocks] == [14, len(whole) - 14]
    assert np.abs(np.concatenate(blocks) - whole).max() <= 1e-5
    short = tone_speech(["a"])  # under 65 frames: one block
    assert len(list(st.bank_parameter_stream(play, short, fps=25))) == 1


@pytest.mark.slow
def test_pack_streams(built, wdir, portrait, tmp_path):
    """A live stream of the full-size bank: chunks of frames with exactly the audio they cover."""
    pytest.importorskip("talkinghead.streaming")
    from talkinghead import Avatar

    _, path = built
    config = {"weights_dir": str(wdir), "onnx_dir": str(tmp_path / "onnx")}
    player = BankAnimator(source="sadtalker", source_config=config, k=3, pack=path, build="never")
    av = Avatar(portrait, tts=FakeTTS(), animator=player, writer=None)
    chunks = list(av.stream("hello there", fps=25, sample_rate=16000, chunk_frames=5))
    assert chunks and all(c.frames.shape[1:] == (256, 256, 3) and len(c.samples) == 640 * len(c.frames)
                          for c in chunks)
    assert player.source._nets is None  # the generator was never loaded
