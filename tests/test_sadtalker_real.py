"""Opt-in: SadTalker with the real official weights (TALKINGHEAD_REAL_WEIGHTS=1 and the files cached).

Fetch them with ``talkinghead weights download sadtalker``. Renders 1 s at 10 fps (~10 frames; minutes
on a small CPU) and checks that the mouth moves.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from talkinghead.backends.sadtalker.backend import SadTalkerAnimator

PORTRAIT = Path(__file__).resolve().parent.parent / "assets" / "portrait_astronaut.png"

pytestmark = [
    pytest.mark.skipif(os.environ.get("TALKINGHEAD_REAL_WEIGHTS") != "1",
                       reason="set TALKINGHEAD_REAL_WEIGHTS=1 to run the real-weights SadTalker test"),
    pytest.mark.skipif(not SadTalkerAnimator.weights_available(),
                       reason="SadTalker weights not in the cache; run `talkinghead weights download sadtalker`"),
]


def test_real_weights_one_second_moves_the_mouth():
    pytest.importorskip("torch")
    pytest.importorskip("mediapipe")
    from talkinghead.io import load_image
    from talkinghead.testing import tone_speech

    fps = 10
    # speech-like bursts with pauses so that the mouth opens and closes
    audio = tone_speech(["one", "two", "three"], word_s=0.25, gap_s=0.08)
    anim = SadTalkerAnimator(seed=0, batch_size=2)
    try:
        prepared = anim.prepare(load_image(str(PORTRAIT)))
        frames = np.concatenate([c.frames for c in anim.animate(prepared, audio, fps=fps)])
    finally:
        anim.close()
    from talkinghead.stages.animator import frame_count

    assert frames.shape == (frame_count(audio.duration, fps), 256, 256, 3)
    lm = prepared.landmarks
    x1, y1 = np.floor(lm[48:68].min(0)).astype(int) - 4
    x2, y2 = np.ceil(lm[48:68].max(0)).astype(int) + 4
    mouth = frames[:, max(y1, 0):y2, max(x1, 0):x2].astype(np.float32)
    motion = np.abs(np.diff(mouth, axis=0)).mean()
    rest = frames[:, :40].astype(np.float32)  # the top of the crop (forehead/background)
    assert motion > 1.0, f"the mouth region barely changes (mean |diff| {motion:.2f})"
    assert motion > np.abs(np.diff(rest, axis=0)).mean(), "the mouth moves less than the forehead"
