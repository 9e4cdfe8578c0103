import numpy as np
import pytest

av = pytest.importorskip("av")

from talkinghead.backends.mp4 import Mp4Writer  # noqa: E402
from talkinghead.errors import OutputError  # noqa: E402
from talkinghead.values import Audio, FrameChunk  # noqa: E402


def chunks(n, h=64, w=48, size=5):
    for s in range(0, n, size):
        k = min(size, n - s)
        f = np.zeros((k, h, w, 3), np.uint8)
        f[..., 0] = np.arange(s, s + k)[:, None, None] * 5
        yield FrameChunk(f, s)


def probe(path):
    with av.open(str(path)) as c:
        v, a = c.streams.video[0], c.streams.audio[0]
        return (
            v.codec_context.name,
            v.codec_context.pix_fmt,
            float(v.duration * v.time_base),
            a.codec_context.name,
            float(a.duration * a.time_base),
            sum(1 for _ in c.decode(video=0)),
        )


@pytest.mark.parametrize("fps", [20, 25, 12.5])
def test_h264_aac_lengths_agree(tmp_path, fps):
    audio = Audio(0.2 * np.sin(np.linspace(0, 400, 16000 * 2)).astype(np.float32), 16000)
    n = int(round(audio.duration * fps))
    w = Mp4Writer()
    w.load()
    video = w.write(chunks(n), audio, tmp_path / "o.mp4", fps=fps)
    vcodec, pix, vdur, acodec, adur, decoded = probe(tmp_path / "o.mp4")
    assert (vcodec, pix, acodec) == ("h264", "yuv420p", "aac")
    assert decoded == n == video.n_frames
    assert abs(vdur - adur) <= 1 / fps + 1e-6
    assert abs(vdur - audio.duration) <= 1 / fps + 1e-6


def test_file_mode_follows_umask(tmp_path):
    import os
    import stat

    old = os.umask(0o022)
    try:
        Mp4Writer().write(chunks(2), None, tmp_path / "m.mp4", fps=10)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "m.mp4").stat().st_mode) == 0o644


def test_odd_frame_size_is_padded(tmp_path):
    video = Mp4Writer().write(chunks(4, h=31, w=33), None, tmp_path / "odd.mp4", fps=10)
    assert video.n_frames == 4 and (video.width, video.height) == (33, 31)


def test_failure_leaves_no_file(tmp_path):
    def broken():
        yield from chunks(5)
        raise RuntimeError("animator crashed")

    target = tmp_path / "x.mp4"
    with pytest.raises(RuntimeError, match="crashed"):
        Mp4Writer().write(broken(), None, target, fps=10)
    assert list(tmp_path.iterdir()) == []


def test_unwritable_folder(tmp_path):
    with pytest.raises(OutputError):
        Mp4Writer().write(chunks(2), None, tmp_path / "no" / "x.mp4", fps=10)
