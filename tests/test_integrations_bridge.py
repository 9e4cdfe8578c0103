"""SpeechDrivenStream: the framework-free core of the LiveKit and Pipecat adapters (fake stages).

The adapters themselves are tested inside their frameworks in tests/integrations (.venv-agents).
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from talkinghead import Avatar, ModelCache
from talkinghead.errors import AudioError, ConfigError
from talkinghead.integrations import SpeechDrivenStream, pcm16_bytes, pcm16_samples
from talkinghead.streaming import TurnEnded
from talkinghead.testing import FakeAnimator, tone_speech


def make(portrait):
    return Avatar(portrait, tts=None, writer=None, animator=FakeAnimator(size=32), cache=ModelCache())


def test_pcm16_round_trip_and_channels():
    x = np.array([0, 1, -1, 32767, -32768, 1234], np.int16)
    assert pcm16_bytes(pcm16_samples(x.tobytes())) == x.tobytes()
    assert pcm16_bytes(pcm16_samples(memoryview(x.tobytes()))) == x.tobytes()
    stereo = np.array([[100, 300], [-200, -400]], np.int16)
    np.testing.assert_allclose(pcm16_samples(stereo.tobytes(), 2), np.array([200, -300]) / 32768)
    assert pcm16_bytes(np.array([2.0, -2.0])) == np.array([32767, -32768], np.int16).tobytes()  # clipped
    with pytest.raises(AudioError, match="even number of bytes"):
        pcm16_samples(b"\x00\x01\x02")
    with pytest.raises(AudioError, match="channels"):
        pcm16_samples(np.zeros(3, np.int16), 2)
    with pytest.raises(AudioError):
        pcm16_samples(b"", 0)


def test_bad_options(small_portrait):
    av = make(small_portrait)
    with pytest.raises(ConfigError):
        SpeechDrivenStream(av, max_lead=-1)
    with pytest.raises(ConfigError, match="whole number of samples"):
        SpeechDrivenStream(av, fps=20, sample_rate=22050)
    stream = SpeechDrivenStream(av)
    stream.close()
    with pytest.raises(ConfigError, match="closed"):
        stream.push(b"\x00\x00", 16000)


@pytest.mark.slow
def test_pushed_speech_comes_back_with_its_frames_then_idle(small_portrait):
    events: list[TurnEnded] = []
    stream = SpeechDrivenStream(make(small_portrait), on_utterance=events.append)
    assert stream.frame_size() == (32, 32) and stream.samples_per_frame == 960
    voice = tone_speech(["a", "b"], sample_rate=16000, word_s=0.2, gap_s=0.05)
    pcm = pcm16_bytes(voice.samples)

    async def main():
        chunks = []
        async for chunk in stream.chunks():
            chunks.append(chunk)
            if len(chunks) == 3:  # idle first, then speech pushed in 20 ms pieces with a rate change
                half = len(pcm) // 2 // 640 * 640
                for i in range(0, half, 640):
                    stream.push(pcm[i : i + 640], 16000)
                stereo = np.repeat(voice.resample(48000).samples[half // 2 * 3 :, None], 2, axis=1)
                stream.push(pcm16_bytes(stereo), 48000, num_channels=2)
                stream.end()
            if len(chunks) > 3 and chunks[-1].kind == "idle" and chunks[-2].kind == "speech":
                return chunks
            assert len(chunks) < 200

    chunks = asyncio.run(asyncio.wait_for(main(), 30))
    stream.close()
    assert [c.kind for c in chunks[:3]] == ["idle"] * 3
    speech = [c for c in chunks if c.kind == "speech"]
    assert abs(len(speech) - voice.duration * 25) <= 1  # one frame per 40 ms of audio, one segment
    assert [c.segment_end for c in speech].count(True) == 1 and speech[-1].segment_end
    got = np.concatenate([c.samples for c in speech])[: int(voice.duration * 24000)]
    ref = voice.resample(24000).samples
    assert np.corrcoef(got[: len(ref)], ref[: len(got)])[0, 1] > 0.95
    pairs = stream.frames_of(speech[0])
    assert len(pairs) == 1 and pairs[0][0].shape == (32, 32, 3) and len(pairs[0][1]) == 960
    assert stream.frames_of(chunks[0])[0][1] is None  # idle frames carry no audio
    (event,) = events
    assert event.status == "done" and event.metrics.frames == len(speech) and event.metrics.av_drift_samples == 0
    assert event.metrics.first_frame_s is not None and event.metrics.first_frame_s < 1.0
    assert list(stream.utterances) == events


def test_clear_drops_the_utterance_and_idles(small_portrait):
    stream = SpeechDrivenStream(make(small_portrait))
    voice = tone_speech(["a", "b", "c", "d", "e"], sample_rate=16000)

    async def main():
        out = []
        async for chunk in stream.chunks():
            out.append(chunk)
            if len(out) == 1:
                stream.push(pcm16_bytes(voice.samples), 16000)
                stream.end()
            if sum(c.kind == "speech" for c in out) == 5 and stream.speaking:
                turn = stream.clear()
                assert turn is not None and turn.status == "interrupted"
                mark = len(out)
            if len(out) > 1 and not stream.speaking and len(out) >= 15:
                return out, mark

    out, mark = asyncio.run(asyncio.wait_for(main(), 30))
    stream.close()
    assert all(c.kind == "idle" for c in out[mark:]), [c.kind for c in out[mark:]]
    assert not any(c.segment_end for c in out)
    assert stream.clear() is None  # closed: nothing to clear


def test_livekit_worker_command_says_what_is_missing(portrait_path, monkeypatch):
    import io

    from talkinghead.cli import main

    monkeypatch.delenv("LIVEKIT_URL", raising=False)
    monkeypatch.delenv("LIVEKIT_TOKEN", raising=False)
    err = io.StringIO()
    assert main(["livekit-worker", "--image", str(portrait_path)], out=io.StringIO(), err=err) == 1
    assert "LIVEKIT_URL/LIVEKIT_TOKEN" in err.getvalue()
    try:
        import livekit.agents  # noqa: F401
    except ImportError:  # the main environment: the error names the extra
        err = io.StringIO()
        args = ["livekit-worker", "--image", str(portrait_path), "--url", "ws://127.0.0.1:9", "--token", "t"]
        assert main(args, out=io.StringIO(), err=err) == 1
        assert "talkinghead[livekit]" in err.getvalue()
