"""Fragmented MP4 to a binary stream: decodable while it is written, A/V aligned, and `-o -` on the CLI."""

from __future__ import annotations

import io
import os
import threading
import time
from fractions import Fraction

import numpy as np
import pytest

av = pytest.importorskip("av")

from talkinghead import Avatar, ModelCache  # noqa: E402
from talkinghead.cli import main  # noqa: E402
from talkinghead.errors import OutputError, StageError  # noqa: E402
from talkinghead.streaming.fmp4 import Fmp4Encoder, write_fmp4  # noqa: E402
from talkinghead.testing import FakeAnimator, FakeTTS, MemoryWriter  # noqa: E402
from talkinghead.values import AVChunk  # noqa: E402


class SlowAnimator(FakeAnimator):
    """A fake animator that takes ``delay`` seconds per chunk, so a render lasts a while."""

    def __init__(self, delay: float, **kw) -> None:
        super().__init__(**kw)
        self.delay = delay

    def animate(self, prepared, audio, *, fps, progress=None):
        for chunk in super().animate(prepared, audio, fps=fps, progress=progress):
            time.sleep(self.delay)
            yield chunk


@pytest.mark.slow
def test_first_frame_decodes_while_the_render_goes_on(small_portrait):
    """A reader decodes the stream from a pipe with PyAV as the bytes arrive."""
    avatar = Avatar(small_portrait, tts=FakeTTS(), animator=SlowAnimator(0.1, chunk_size=5, size=64),
                    writer=MemoryWriter(), cache=ModelCache())
    read_end, write_end = os.pipe()
    times: dict[str, float] = {}
    failed: list[BaseException] = []

    def produce() -> None:
        try:
            with os.fdopen(write_end, "wb", buffering=0) as out:
                write_fmp4(avatar.stream("one two three four five six seven eight", chunk_frames=5), out)
        except BaseException as exc:  # reported below
            failed.append(exc)
        times["render_end"] = time.perf_counter()

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    frames = []
    with os.fdopen(read_end, "rb", buffering=0) as pipe:
        container = av.open(pipe, format="mp4", options={"probesize": "32", "analyzeduration": "0"})
        for frame in container.decode(video=0):
            if not frames:
                times["first_frame"] = time.perf_counter()
            frames.append(frame.to_ndarray(format="rgb24"))
        container.close()
    producer.join(60)
    assert not failed, failed
    assert times["first_frame"] < times["render_end"] - 0.5  # well before the render ended
    spoken = FakeTTS().synthesize("one two three four five six seven eight").resample(24000)
    assert len(frames) == -(-len(spoken.samples) // 960)
    assert frames[0].shape == (64, 64, 3)


def click_stream(n: int = 50, at: int = 25) -> list[AVChunk]:
    """Black frames with one white frame at frame ``at`` and a click at the same instant."""
    chunks = []
    for k in range(0, n, 5):
        frames = np.zeros((5, 64, 64, 3), np.uint8)
        samples = np.zeros(5 * 960, np.float32)
        if k <= at < k + 5:
            frames[at - k] = 255
            samples[(at - k) * 960 : (at - k) * 960 + 48] = 0.9
        chunks.append(AVChunk(frames, samples, 24000, Fraction(25), k))
    return chunks


def test_audio_and_video_stay_aligned_after_decoding():
    buf = io.BytesIO()
    stats = write_fmp4(click_stream(), buf)
    assert stats.frames == 50 and stats.samples == 50 * 960 and stats.bytes == len(buf.getvalue())
    buf.seek(0)
    container = av.open(buf)
    stream = container.streams.video[0]
    assert stream.codec_context.profile in ("Constrained Baseline", "Baseline")
    assert container.streams.audio[0].codec_context.name == "aac" and container.streams.audio[0].rate == 24000
    white = [float(f.time) for f in container.decode(video=0) if f.to_ndarray(format="rgb24").mean() > 200]
    buf.seek(0)
    container = av.open(buf)
    click = None
    for f in container.decode(audio=0):
        x = f.to_ndarray().reshape(-1)
        i = int(np.argmax(np.abs(x)))
        if abs(x[i]) > 0.3:
            click = float(f.time) + i / 24000
            break
    assert len(white) == 1 and click is not None
    assert abs(white[0] - click) < 0.5 / 25  # within half a frame


def test_encoder_refuses_bad_streams():
    with pytest.raises(OutputError, match="binary stream"):
        Fmp4Encoder(object())
    with pytest.raises(StageError, match="no frames"):
        write_fmp4([], io.BytesIO())
    chunks = click_stream(10)
    odd = AVChunk(np.zeros((5, 32, 32, 3), np.uint8), np.zeros(4800, np.float32), 24000, 25, 10)
    with pytest.raises(StageError, match="changed"):
        write_fmp4([*chunks, odd], io.BytesIO())

    class Closed(io.RawIOBase):
        def write(self, b):
            raise OSError("disk full")

    with pytest.raises(OutputError, match="disk full"):
        write_fmp4(click_stream(10), Closed())


def test_cli_say_to_stdout(portrait_path, tmp_path):
    """`talkinghead say ... -o -` writes fragmented MP4 to stdout and reports on stderr."""
    from talkinghead.plugins import add_plugin, reset
    from talkinghead.testing import FakesPlugin

    reset()
    add_plugin(FakesPlugin(), name="talkinghead-fakes")
    try:
        out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
        err = io.StringIO()
        code = main(["say", "-i", str(portrait_path), "-t", "Hello there. Streaming works.", "-o", "-",
                     "--tts", "fake", "--animator", "fake"], out=out, err=err)
        assert code == 0, err.getvalue()
        out.flush()
        data = out.buffer.getvalue()
        assert "streamed" in err.getvalue() and "25 fps" in err.getvalue()
        assert not list(tmp_path.iterdir())  # nothing written to disk
        container = av.open(io.BytesIO(data))
        frames = sum(1 for _ in container.decode(video=0))
        assert frames > 20
        assert float(container.streams.video[0].guessed_rate or 25) == pytest.approx(25, abs=1)
    finally:
        reset()


@pytest.mark.slow
def test_cli_speak_and_ask_to_stdout(portrait_path, tmp_path):
    from talkinghead.plugins import add_plugin, reset
    from talkinghead.testing import FakesPlugin, tone_speech

    reset()
    add_plugin(FakesPlugin(), name="talkinghead-fakes")
    try:
        import soundfile as sf

        wav = tmp_path / "speech.wav"
        speech = tone_speech(["a", "b", "c"], sample_rate=16000)
        sf.write(wav, speech.samples, 16000)
        for argv, expect in (
            (["speak", "-i", str(portrait_path), "-a", str(wav), "-o", "-", "--animator", "fake"], "streamed"),
            (["ask", "-i", str(portrait_path), "-Q", "How are you?", "-o", "-", "--animator", "fake", "--tts", "fake",
              "--llm", "fake"], "answer: You said: How are you?"),
        ):
            out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
            err = io.StringIO()
            assert main(argv, out=out, err=err) == 0, err.getvalue()
            out.flush()
            assert expect in err.getvalue()
            frames = sum(1 for _ in av.open(io.BytesIO(out.buffer.getvalue())).decode(video=0))
            assert frames > 10
        assert sorted(p.name for p in tmp_path.iterdir()) == ["speech.wav"]
    finally:
        reset()
