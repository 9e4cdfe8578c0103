import numpy as np

from talkinghead import Avatar, ModelCache
from talkinghead.testing import FakeTTS, MemoryWriter
from talkinghead_pulse import PulseAnimator


def test_pulse_follows_the_voice():
    portrait = np.random.default_rng(0).integers(0, 255, (64, 48, 3), dtype=np.uint8)
    writer = MemoryWriter()
    avatar = Avatar(portrait, tts=FakeTTS(), animator=PulseAnimator(), writer=writer, cache=ModelCache())
    video = avatar.say("one two three")
    assert video.n_frames == writer.frames.shape[0]
    # loud frames are zoomed, silent ones are the portrait itself
    diffs = [np.abs(f.astype(int) - portrait).mean() for f in writer.frames]
    assert min(diffs) == 0 and max(diffs) > 1
