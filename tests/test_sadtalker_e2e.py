"""SadTalker end to end: Avatar -> prepare (mediapipe crop, ReconNet) -> coefficients -> renderer.

The weights are the official full-size files, filled deterministically (``fill.py``) and written once
per module. The 256 px generator costs ~1.2 TFLOP per frame, so the clips are 1-2 frames long.
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
from talkinghead.errors import AudioError, NoFaceError  # noqa: E402
from talkinghead.io import load_image  # noqa: E402
from talkinghead.testing import FakeTTS, MemoryWriter, tone_speech  # noqa: E402
from talkinghead.values import Portrait  # noqa: E402

PORTRAIT = str(Path(__file__).resolve().parent.parent / "assets" / "portrait_astronaut.png")


@pytest.fixture(scope="module")
def wdir(tmp_path_factory):
    return write_weights_dir(tmp_path_factory.mktemp("sadtalker_weights"))


@pytest.fixture(scope="module")
def crop_run(wdir):
    """One Avatar.say in crop mode: 'hi' = 0.4 s at 5 fps -> 2 frames."""
    writer = MemoryWriter()
    av = Avatar(PORTRAIT, tts=FakeTTS(), animator=("sadtalker", {"weights_dir": str(wdir), "seed": 0}),
                writer=writer, fps=5)
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


def test_full_mode_pastes_into_portrait(wdir):
    """``full``: 73-d mapping net, one frame pasted back into the whole portrait."""
    image = load_image(PORTRAIT).image
    anim = SadTalkerAnimator(weights_dir=wdir, preprocess="full", seed=0)
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


@pytest.mark.skipif(not _bf16_ok(), reason="this CPU/torch build has no bfloat16 autocast")
def test_bf16_channels_last_switches_run(wdir, crop_run):
    av, _, _ = crop_run
    src = av._prepared().source
    anim = SadTalkerAnimator(weights_dir=wdir, bf16=True, channels_last=True)
    anim.load()
    try:
        with anim._grad_ctx(), anim._autocast():
            kp = anim._nets["kp"](src)
            out = anim._nets["mapping"](torch.zeros(2, 70, 27))
        assert kp.shape == (1, 15, 3) and torch.isfinite(kp.float()).all()
        vals = out.values() if isinstance(out, dict) else out
        assert all(torch.isfinite(v.float()).all() for v in vals)
    finally:
        anim.close()
