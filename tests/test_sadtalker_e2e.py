"""SadTalker end to end: Avatar -> prepare (mediapipe crop, ReconNet) -> coefficients -> renderer.

The pipeline tests run on the tiny seeded networks of ``talkinghead.testing.nets`` (milliseconds
per frame). One ``slow`` test loads the official full-size files (filled deterministically by
``talkinghead.testing.fill`` and written once) and renders a frame through the whole path: the
256 px generator costs ~1.2 TFLOP per frame.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")
pytest.importorskip("mediapipe")
pytest.importorskip("cv2")

from sadtalker_weights import write_weights_dir  # noqa: E402

from talkinghead import Avatar  # noqa: E402
from talkinghead.backends.sadtalker.backend import SadTalkerAnimator  # noqa: E402
from talkinghead.errors import AudioError, ConfigError, NoFaceError  # noqa: E402
from talkinghead.io import load_image  # noqa: E402
from talkinghead.testing import FakeTTS, MemoryWriter, nets, tone_speech  # noqa: E402
from talkinghead.values import Portrait  # noqa: E402

PORTRAIT = str(Path(__file__).resolve().parent.parent / "assets" / "portrait_astronaut.png")


@pytest.fixture(scope="module")
def crop_run():
    """One Avatar.say in crop mode on the tiny networks: 'hi' = 0.4 s at 5 fps -> 2 frames."""
    writer = MemoryWriter()
    anim = SadTalkerAnimator.from_networks(nets.tiny_sadtalker(), seed=0)
    av = Avatar(PORTRAIT, tts=FakeTTS(), animator=anim, writer=writer, fps=5)
    video = av.say("hi")
    return av, writer, video


def test_say_crop_mode(crop_run):
    av, writer, video = crop_run
    assert video.n_frames == 2 and writer.frames is not None
    frames = writer.frames
    assert frames.shape == (2, 256, 256, 3) and frames.dtype == np.uint8
    assert frames.std() > 5  # an image, not a constant
    prepared = av._prepared()
    assert prepared.source_coeff.shape == (73,) and np.isfinite(prepared.source_coeff).all()
    assert prepared.kp_canonical.shape == (1, 15, 3)
    lm = prepared.landmarks
    assert lm.shape == (68, 2) and (lm > 0).all() and (lm < 256).all()
    # the crop is centred on the face: eyes above the mouth, roughly mid-image
    assert lm[36:48, 1].mean() < lm[48:60, 1].mean()
    assert 64 < lm[:, 0].mean() < 192


def test_mp4_writer_on_rendered_frames(crop_run, tmp_path):
    import av as pyav

    from talkinghead.backends.mp4 import Mp4Writer
    from talkinghead.values import FrameChunk

    _, writer, _ = crop_run
    out = tmp_path / "clip.mp4"
    video = Mp4Writer().write(iter([FrameChunk(writer.frames, 0)]), writer.audio, out, fps=5)
    assert out.is_file() and out.stat().st_size > 1000
    assert video.n_frames == 2 and (video.width, video.height) == (256, 256) and video.has_audio
    with pyav.open(str(out)) as f:
        decoded = [fr.to_ndarray(format="rgb24") for fr in f.decode(video=0)]
        assert f.streams.audio, "the mp4 has no audio stream"
    assert len(decoded) == 2 and decoded[0].shape == (256, 256, 3)
    # lossy (and the filled weights render noise-like texture), but the same picture at 16 px blocks
    def blocks(x):
        return x.astype(np.float32).reshape(16, 16, 16, 16, 3).mean((1, 3))

    assert np.abs(blocks(decoded[0]) - blocks(writer.frames[0])).mean() < 6


def test_audio_shorter_than_a_frame(crop_run):
    av, _, _ = crop_run
    audio = tone_speech(["a"], word_s=0.03, gap_s=0.0)
    with pytest.raises(AudioError, match="shorter than one video frame"):
        list(av.animator.animate(av._prepared(), audio, fps=10))


def test_no_face_is_refused(crop_run):
    av, _, _ = crop_run
    blank = np.full((300, 240, 3), 128, np.uint8)
    with pytest.raises(NoFaceError):
        av.animator.prepare(Portrait(blank, "blank", "blank"))


def test_animate_is_deterministic_with_a_seed(crop_run):
    av, writer, _ = crop_run
    again = np.concatenate([c.frames for c in av.animator.animate(av._prepared(), writer.audio, fps=5)])
    np.testing.assert_array_equal(again, writer.frames)


def test_from_networks_checks_the_set():
    tiny = nets.tiny_sadtalker()
    with pytest.raises(ConfigError, match="recon"):
        SadTalkerAnimator.from_networks({k: v for k, v in tiny.items() if k != "recon"})
    with pytest.raises(ConfigError, match="73 inputs"):
        SadTalkerAnimator.from_networks(tiny, preprocess="full")


def test_full_mode_pastes_into_portrait():
    """``full``: 73-d mapping net, one frame pasted back into the whole portrait."""
    image = load_image(PORTRAIT).image
    anim = SadTalkerAnimator.from_networks(nets.tiny_sadtalker(coeff_nc=73), preprocess="full", seed=0)
    try:
        prepared = anim.prepare(Portrait(image, PORTRAIT, "astronaut"))
        assert anim._nets["mapping"].coeff_nc == 73  # mapping_00109
        chunks = list(anim.animate(prepared, tone_speech(["a"], word_s=0.1, gap_s=0.0), fps=10))
    finally:
        anim.close()
    frames = np.concatenate([c.frames for c in chunks])
    assert frames.shape == (1,) + image.shape
    x1, y1, x2, y2 = prepared.paster.box
    outside = np.ones(image.shape[:2], bool)
    outside[y1:y2, x1:x2] = False
    np.testing.assert_array_equal(frames[0][outside], image[outside])
    assert not np.array_equal(frames[0][y1:y2, x1:x2], image[y1:y2, x1:x2])


def _bf16_ok() -> bool:
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            torch.nn.functional.conv2d(torch.ones(1, 2, 4, 4), torch.ones(2, 2, 3, 3))
        return True
    except Exception:  # pragma: no cover - depends on the CPU/torch build
        return False


@pytest.mark.slow
@pytest.mark.skipif(not _bf16_ok(), reason="this CPU/torch build has no bfloat16 autocast")
def test_bf16_channels_last_switches_run(crop_run):
    av, _, _ = crop_run
    anim = SadTalkerAnimator.from_networks(nets.tiny_sadtalker(), bf16=True, channels_last=True, seed=0)
    try:
        prepared = anim.prepare(av.portrait)
        with anim._grad_ctx(), anim._autocast():
            kp = anim._nets["kp"](prepared.source)
            out = anim._nets["mapping"](torch.zeros(2, 70, 27))
        assert kp.shape == (1, 15, 3) and torch.isfinite(kp.float()).all()
        vals = out.values() if isinstance(out, dict) else out
        assert all(torch.isfinite(v.float()).all() for v in vals)
    finally:
        anim.close()


@pytest.mark.slow
def test_official_full_size_files_load_and_render(tmp_path_factory):
    """The official file layout (full-size, filled) through ``weights_dir``: load, prepare, one frame."""
    wdir = write_weights_dir(tmp_path_factory.mktemp("sadtalker_weights"))
    writer = MemoryWriter()
    av = Avatar(PORTRAIT, tts=FakeTTS(), animator=("sadtalker", {"weights_dir": str(wdir), "seed": 0}),
                writer=writer, fps=5)
    video = av.say("hi")
    assert video.n_frames == 2 and writer.frames.shape == (2, 256, 256, 3)
    assert writer.frames.std() > 5 and av._prepared().kp_canonical.shape == (1, 15, 3)
