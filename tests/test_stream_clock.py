"""One clock for audio and video: AVChunk, StreamClock, StreamResampler, and 10 minutes without drift."""

from fractions import Fraction

import numpy as np
import pytest
from scipy.signal import resample_poly

from talkinghead import Avatar, ModelCache
from talkinghead.errors import ConfigError
from talkinghead.streaming import StreamClock
from talkinghead.streaming.resample import StreamResampler
from talkinghead.testing import FakeAnimator, FakeTTS, MemoryWriter
from talkinghead.values import AVChunk


@pytest.mark.parametrize(
    "fps, rate, spf", [(25, 24000, 960), (20, 24000, 1200), (25, 16000, 640), (25, 48000, 1920), (30, 48000, 1600)]
)
def test_clock_whole_samples_per_frame(fps, rate, spf):
    clock = StreamClock(fps, rate)
    assert clock.samples_per_frame == spf
    assert clock.sample_of(7) == 7 * spf
    assert clock.pts(50) == Fraction(50, fps)
    assert clock.frames_for(spf + 1) == 2


@pytest.mark.parametrize("fps, rate", [(20, 22050), (Fraction(30000, 1001), 48000), (24, 44100)])
def test_clock_refuses_pairs_that_do_not_divide(fps, rate):
    with pytest.raises(ConfigError, match="whole number of samples per frame"):
        StreamClock(fps, rate)


def test_clock_error_names_rates_that_work():
    with pytest.raises(ConfigError, match="24000"):
        StreamClock(20, 22050)


def test_avchunk_holds_exactly_the_samples_of_its_frames():
    frames = np.zeros((3, 8, 8, 3), np.uint8)
    chunk = AVChunk(frames, np.zeros(3 * 960, np.float32), 24000, 25, first_frame=50, kind="idle")
    assert chunk.fps == Fraction(25) and chunk.samples_per_frame == 960
    assert chunk.pts == Fraction(2) and chunk.end_pts == Fraction(53, 25) and chunk.duration == Fraction(3, 25)
    assert chunk.first_sample == 48000 and chunk.end_frame == 53
    with pytest.raises(ValueError, match="exactly 2880 samples"):
        AVChunk(frames, np.zeros(2879, np.float32), 24000, 25, first_frame=0)
    with pytest.raises(ValueError, match="whole number"):
        AVChunk(frames, np.zeros(3 * 882, np.float32), 22050, 20, first_frame=0)
    with pytest.raises(ValueError, match="kind"):
        AVChunk(frames, np.zeros(2880, np.float32), 24000, 25, first_frame=0, kind="talking")


@pytest.mark.parametrize("rates", [(22050, 24000), (16000, 24000), (48000, 16000), (44100, 48000), (24000, 24000)])
def test_resampler_in_pieces_equals_whole_signal(rates):
    a, b = rates
    rng = np.random.default_rng(1)
    x = rng.standard_normal(20011).astype(np.float32)
    g = np.gcd(a, b)
    whole = resample_poly(x.astype(np.float64), b // g, a // g)
    r = StreamResampler(a, b)
    out, i = [], 0
    while i < len(x):
        n = int(rng.integers(1, 900))
        out.append(r.push(x[i : i + n]))
        i += n
    out.append(r.flush())
    pieces = np.concatenate(out)
    assert len(pieces) == len(whole)
    np.testing.assert_allclose(pieces, whole, atol=1e-5)


@pytest.mark.slow
def test_ten_minutes_of_stream_do_not_drift(small_portrait):
    """10 minutes at 25 fps, speech pushed in odd pieces at 22.05 kHz between idle stretches.

    Every chunk starts where the last ended (frames and samples), its pts is first_frame / fps
    exactly, and each speech segment's samples sit exactly at its first frame's first sample.
    """
    av = Avatar(small_portrait, tts=FakeTTS(), animator=FakeAnimator(chunk_size=50, size=32), writer=MemoryWriter(),
                cache=ModelCache())
    session = av.live(chunk_frames=25)
    clock, spf = session.clock, session.clock.samples_per_frame
    total = 10 * 60 * 25
    rng = np.random.default_rng(7)
    frame = sample = 0
    out = np.zeros(total * spf, np.float32)
    expected: list[tuple[int, np.ndarray]] = []  # (segment number, resampled speech)
    starts: dict[int, int] = {}
    next_push = 100
    n_seg = 0
    while frame < total:
        if frame >= next_push:
            speech = (0.3 * np.sin(np.arange(int(rng.uniform(1.0, 4.0) * 22050)) * 0.05)).astype(np.float32)
            i = 0
            while i < len(speech):
                n = int(rng.integers(100, 5000))
                session.push_speech(speech[i : i + n], 22050, text=f"segment {n_seg}")
                i += n
            session.end_speech()
            expected.append((n_seg, resample_poly(speech.astype(np.float64), 160, 147)))
            n_seg += 1
            next_push = frame + int(rng.integers(150, 400))
        chunk = next(session)
        assert chunk.first_frame == frame and chunk.first_sample == sample
        assert chunk.pts == Fraction(frame, 25) == clock.pts(frame)
        assert len(chunk.samples) == chunk.n_frames * spf
        if chunk.kind == "speech" and chunk.text not in starts:
            starts[chunk.text] = chunk.first_frame
        n = min(chunk.n_frames, total - frame)
        out[sample : sample + n * spf] = chunk.samples[: n * spf]
        frame += chunk.n_frames
        sample += len(chunk.samples)
    session.close()
    assert sample == frame * spf  # zero drift, counted in samples
    assert len(starts) >= 40
    for k, speech in expected:
        if f"segment {k}" not in starts:
            continue  # pushed near the end, not played within 10 minutes
        s0 = starts[f"segment {k}"] * spf
        got = out[s0 : s0 + len(speech)]
        np.testing.assert_allclose(got, speech[: len(got)], atol=1e-5)
