"""SadTalker in live streams: coefficients block by block equal the whole clip's; frames, idle and ease.

The coefficient networks are the tiny seeded ones of ``talkinghead.testing.nets`` (equality of the
block-by-block computation with the whole clip's holds for any weights); the generator is replaced by
a probe in the logic tests and runs for real (full size, filled weights, two frames) in one slow test.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")

from talkinghead.backends.sadtalker.audio import mel_windows  # noqa: E402
from talkinghead.backends.sadtalker.backend import SadTalkerAnimator, SadTalkerPrepared  # noqa: E402
from talkinghead.backends.sadtalker.coeffnets import generate_coefficients  # noqa: E402
from talkinghead.backends.sadtalker.mapping import SEMANTIC_RADIUS  # noqa: E402
from talkinghead.backends.sadtalker.stream import CoefficientStream  # noqa: E402
from talkinghead.errors import ConfigError  # noqa: E402
from talkinghead.testing import tone_speech  # noqa: E402
from talkinghead.values import Audio, FrameChunk  # noqa: E402



@pytest.fixture(scope="module")
def nets():
    from talkinghead.testing import nets as tiny_nets

    return tiny_nets.tiny_exp_net(), tiny_nets.tiny_pose_vae()


def ref_coeff() -> np.ndarray:
    return (np.random.default_rng(3).standard_normal(73) * 0.1).astype(np.float32)


@pytest.mark.parametrize("frames", [pytest.param(75, marks=pytest.mark.slow), 40, 9])
def test_coefficients_block_by_block_equal_the_whole_clip(nets, frames):
    exp_net, pose_vae = nets
    fps = 25
    audio = tone_speech([f"w{i}" for i in range(12)], sample_rate=16000)
    wav = np.pad(audio.samples, (0, max(0, frames * 640 - len(audio.samples))))[: frames * 640]
    mels, t = mel_windows(wav, fps)
    assert t == frames
    whole = generate_coefficients(exp_net, pose_vae, mels, ref_coeff()[:70], pose_style=3,
                                  generator=torch.Generator().manual_seed(5)).coeffs
    stream = CoefficientStream(exp_net, pose_vae, ref_coeff(), fps=fps, pose_style=3,
                               generator=torch.Generator().manual_seed(5), blink=lambda idx: np.zeros(len(idx)))
    rng = np.random.default_rng(0)
    seen, i = [], 0
    while i < len(wav):
        n = int(rng.integers(2000, 9000))
        stream.push(wav[i : i + n])
        i += n
        seen.append(len(stream.rows()))
    if frames >= 2 * SEMANTIC_RADIUS + 40:
        assert seen[len(seen) // 2] > 0  # rows become final while audio still arrives
    assert seen == sorted(seen)
    stream.end(frames)
    rows = stream.rows()
    assert rows.shape == whole.shape
    np.testing.assert_allclose(rows, whole, atol=2e-5)


class Probe:
    """Stands in for the generator: each frame carries its MappingNet window's centre row."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, prepared, src, sem, free=None, *, progress=None):
        self.calls += 1
        centre = sem[:, :70, SEMANTIC_RADIUS]
        yield FrameChunk(_encode(centre), 0)


def _encode(rows: np.ndarray) -> np.ndarray:
    """Rows as uint8 images (float32 bytes), decodable with _decode."""
    raw = np.ascontiguousarray(rows.astype(np.float32)).view(np.uint8)  # (n, 280)
    return np.repeat(raw.reshape(len(rows), 1, 280, 1), 3, axis=3)


def _decode(frames: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(frames[:, 0, :, 0]).view(np.float32)


def make_stream(nets, **kw):
    exp_net, pose_vae = nets
    animator = SadTalkerAnimator(seed=1)
    animator._nets = {"exp": exp_net, "pose": pose_vae}
    probe = Probe()
    animator.render_windows = probe
    prepared = SadTalkerPrepared(source=None, source_coeff=ref_coeff(), kp_canonical=None, features=None,
                                 out_size=(280, 1), paster=None)
    stream = animator.open_stream(prepared, fps=Fraction(25), sample_rate=24000, first_frame=10, **kw)
    return stream, probe


def test_stream_speech_idle_and_ease(nets):
    stream, probe = make_stream(nets)
    ref = ref_coeff()[64:70]
    idle = _decode(stream.render(5).frames)
    assert stream.next_frame == 15
    np.testing.assert_allclose(idle[:, 64:70].mean(0), ref, atol=0.02)  # idle: the source pose, swaying a little
    assert np.ptp(idle[:, 64:70], axis=0).max() > 0
    speech = tone_speech([f"w{i}" for i in range(5)], sample_rate=24000)
    for piece in np.array_split(speech.samples, 7):
        stream.push(Audio(piece, 24000))
    assert stream.ready() < stream.pending()  # the last frames wait for the end of the segment
    stream.end_speech()
    n = stream.pending()
    assert n == -(-len(speech.samples) // 960) == stream.ready()
    rows = _decode(stream.render(n).frames)
    assert rows.shape == (n, 70)
    # eased: the segment ends on the source pose (plus the sway that also runs in idle)
    after = _decode(stream.render(3).frames)
    assert np.abs(rows[-1, 64:70] - after[0, 64:70]).max() < 0.01
    assert np.abs(rows[0, 64:70] - idle[-1, 64:70]).max() < 0.01  # and starts from it
    assert np.abs(rows[:, :64] - rows[0, :64]).max() > 1e-3  # the expression moves with the speech


def test_idle_frames_repeat_and_are_kept(nets):
    stream, probe = make_stream(nets, idle_period=1.0)
    first = stream.render(25).frames
    calls = probe.calls
    again = stream.render(25).frames  # one period later: the same frames, not rendered again
    np.testing.assert_array_equal(first, again)
    assert probe.calls == calls


def test_clear_drops_speech(nets):
    stream, _ = make_stream(nets)
    stream.push(tone_speech(["a", "b", "c"], sample_rate=24000))
    assert stream.pending() > 0
    stream.clear()
    assert stream.pending() == 0 and stream.render(2).start == 10


def test_free_view_lists_are_refused_in_streams():
    animator = SadTalkerAnimator(yaw=[0, 20])
    with pytest.raises(ConfigError, match="live stream"):
        animator.open_stream(None, fps=Fraction(25), sample_rate=24000)


@pytest.mark.slow
def test_real_generator_streams_a_few_frames(tmp_path_factory):
    pytest.importorskip("mediapipe")
    from sadtalker_weights import write_weights_dir

    from talkinghead import Avatar

    wdir = write_weights_dir(tmp_path_factory.mktemp("sadtalker_weights"))
    portrait = str(Path(__file__).resolve().parent.parent / "assets" / "portrait_astronaut.png")
    av = Avatar(portrait, animator=("sadtalker", {"weights_dir": str(wdir), "seed": 0}), tts=None, fps=5)
    session = av.live(sample_rate=16000, chunk_frames=1)
    session.speak(Audio(tone_speech(["hi"], sample_rate=16000).samples[:3200], 16000))  # one frame at 5 fps
    chunks = [next(session) for _ in range(2)]
    assert [c.kind for c in chunks] == ["speech", "idle"]
    assert all(c.frames.shape == (1, 256, 256, 3) and c.frames.std() > 5 for c in chunks)
    session.close()
