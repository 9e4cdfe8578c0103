"""The bank animator in live streams (the streaming spine of ``talkinghead.streaming``): chunks of
frames with exactly the audio they cover, idle frames between speech, on the viseme and the tiny
SadTalker sources."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("cv2")
pytest.importorskip("mediapipe")
streaming = pytest.importorskip("talkinghead.streaming")

from talkinghead import Avatar  # noqa: E402
from talkinghead.backends.bank import BankAnimator  # noqa: E402
from talkinghead.io import load_image  # noqa: E402
from talkinghead.testing import FakeTTS, tone_speech  # noqa: E402
from talkinghead.values import Portrait  # noqa: E402


@pytest.fixture(scope="module")
def portrait(portrait_path):
    return Portrait(load_image(portrait_path).image)


@pytest.fixture(scope="module")
def viseme_bank(tmp_path_factory):
    return BankAnimator(source="viseme", k=6, tts=FakeTTS(), sentences=2, bank_dir=tmp_path_factory.mktemp("b"))


@pytest.mark.slow
def test_avatar_stream_on_a_bank(viseme_bank, portrait_path):
    av = Avatar(portrait_path, tts=FakeTTS(), animator=viseme_bank, writer=None)
    chunks = list(av.stream("hello there my friend", fps=25, sample_rate=16000, chunk_frames=5))
    assert chunks and all(len(c.samples) == len(c.frames) * 640 for c in chunks)
    assert [c.first_frame for c in chunks] == list(np.cumsum([0] + [len(c.frames) for c in chunks])[:-1])
    frames = np.concatenate([c.frames for c in chunks])
    assert frames.shape[1:] == av.portrait.image.shape
    assert frames.std(axis=0).max() > 10  # the face moves


def test_animator_stream_speech_then_idle(viseme_bank, portrait):
    from talkinghead.streaming import StreamClock, open_animator_stream

    prepared = viseme_bank.prepare(portrait)
    stream = open_animator_stream(viseme_bank, prepared, clock=StreamClock(25, 16000))
    stream.push(tone_speech(["one", "two"]))
    stream.end_speech()
    pending = stream.pending()
    assert pending == 20  # 0.8 s at 25 fps
    speech = stream.render(pending)
    idle = stream.render(10)
    assert speech.start == 0 and idle.start == pending and stream.next_frame == pending + 10
    assert speech.frames.shape[0] == pending and idle.frames.shape[0] == 10
    stream.close()


@pytest.mark.slow
def test_tiny_sadtalker_bank_streams(portrait, tmp_path):
    from talkinghead.backends.sadtalker import SadTalkerAnimator
    from talkinghead.testing import nets

    st = SadTalkerAnimator.from_networks(nets.tiny_sadtalker(), seed=0)
    bank = BankAnimator(source=st, k=4, tts=FakeTTS(), sentences=1, bank_dir=tmp_path)
    av = Avatar(portrait, tts=FakeTTS(), animator=bank, writer=None)
    chunks = list(av.stream("one two three", fps=25, sample_rate=16000, chunk_frames=5))
    assert chunks and all(c.frames.shape[1:] == (256, 256, 3) for c in chunks)
    assert all(len(c.samples) == len(c.frames) * 640 for c in chunks)
