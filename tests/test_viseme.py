"""The viseme animator: frame count, determinism, where frames change, errors, options."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("mediapipe")
pytest.importorskip("cv2")

from talkinghead.backends.viseme import VisemeAnimator  # noqa: E402
from talkinghead.backends.viseme.timeline import Viseme, compute_drive, viseme_of  # noqa: E402
from talkinghead.errors import (  # noqa: E402
    ConfigError,
    FaceTooSmallError,
    MissingDependencyError,
    MultipleFacesError,
    NoFaceError,
)
from talkinghead.io import load_image  # noqa: E402
from talkinghead.plugins import get_registry  # noqa: E402
from talkinghead.stages import Animator, frame_count  # noqa: E402
from talkinghead.testing import tone_speech  # noqa: E402
from talkinghead.values import Audio, PhonemeTiming, Portrait  # noqa: E402

PORTRAIT = Path(__file__).resolve().parents[1] / "assets" / "portrait_astronaut.png"


@pytest.fixture(scope="module")
def portrait():
    import cv2

    # 256² keeps the test fast; the face is still ~50 px wide.
    return Portrait(cv2.resize(load_image(PORTRAIT).image, (256, 256), interpolation=cv2.INTER_AREA))


@pytest.fixture(scope="module")
def animator():
    return VisemeAnimator(seed=3)


@pytest.fixture(scope="module")
def prepared(animator, portrait):
    return animator.prepare(portrait)


def render(animator, prepared, audio, fps=20.0):
    return np.concatenate([c.frames for c in animator.animate(prepared, audio, fps=fps)])


def test_registered_and_protocol():
    assert "viseme" in get_registry().names("animator")
    assert isinstance(VisemeAnimator(), Animator)


@pytest.mark.parametrize("duration,fps", [(0.01, 20), (1.0, 20), (1.03, 25), (2.49, 12.5)])
def test_exact_frame_count_and_size(animator, prepared, portrait, duration, fps):
    audio = Audio(np.zeros(int(16000 * duration), np.float32), 16000)
    frames = render(animator, prepared, audio, fps)
    assert frames.shape == (frame_count(audio.duration, fps),) + portrait.image.shape


def test_chunks_and_progress(portrait, prepared):
    calls = []
    anim = VisemeAnimator(chunk_size=5)
    audio = tone_speech(["a", "b", "c"])
    chunks = list(anim.animate(prepared, audio, fps=20, progress=lambda d, t: calls.append((d, t))))
    n = frame_count(audio.duration, 20)
    assert [c.start for c in chunks] == list(range(0, n, 5))
    assert all(len(c) == 5 for c in chunks[:-1])
    assert calls[-1] == (n, n) and len(calls) == len(chunks)


def test_deterministic_with_seed(portrait, prepared):
    audio = tone_speech(["one", "two", "three", "four"], gap_s=0.3)
    a = render(VisemeAnimator(seed=7), prepared, audio)
    b = render(VisemeAnimator(seed=7), prepared, audio)
    c = render(VisemeAnimator(seed=8), prepared, audio)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_render_threads_give_the_same_frames(prepared):
    """Frames split between render threads equal one thread's, for any split of a chunk."""
    audio = tone_speech(["one", "two", "three"], gap_s=0.2)
    one = render(VisemeAnimator(seed=5, render_threads=1, chunk_size=7), prepared, audio)
    for threads, chunk in ((2, 7), (3, 5), (2, 1)):
        many = render(VisemeAnimator(seed=5, render_threads=threads, chunk_size=chunk), prepared, audio)
        assert np.array_equal(one, many), (threads, chunk)


def test_render_threads_default_follows_the_head_region(prepared):
    """Automatic: one thread for a small head region (this 256² portrait), two for a close-up's."""
    from dataclasses import replace

    anim = VisemeAnimator()
    assert anim.threads_for(prepared) == 1
    big = replace(prepared, fields=replace(prepared.fields, roi=(0, 0, 400, 400)))
    assert anim.threads_for(big) == (2 if (os.cpu_count() or 1) >= 2 else 1)
    assert VisemeAnimator(render_threads=3).threads_for(prepared) == 3


def test_render_threads_end_with_the_clip(prepared):
    """A clip abandoned after its first chunk leaves no render thread behind."""
    import threading

    anim = VisemeAnimator(render_threads=2, chunk_size=4)
    clip = anim.animate(prepared, tone_speech(["one", "two", "three"]), fps=20)
    next(clip)
    assert any(t.name.startswith("viseme-render") for t in threading.enumerate())
    clip.close()
    assert not any(t.name.startswith("viseme-render") for t in threading.enumerate())


def test_silence_is_the_portrait_when_still(prepared, portrait):
    """No speech, no blinks, no sway, no saccades: the mouth rests closed and every frame is the portrait."""
    still = VisemeAnimator(blink_rate=0, head_motion=0, gaze=0, emotion="neutral")
    frames = render(still, prepared, Audio(np.zeros(16000, np.float32), 16000))
    assert np.array_equal(frames, np.repeat(portrait.image[None], len(frames), axis=0))


def test_jaw_is_closed_in_silence():
    audio = tone_speech(["a", "b", "c"], gap_s=0.4)
    n = frame_count(audio.duration, 20)
    drive = compute_drive(audio, 20, n)
    rms = audio.rms_envelope(20, n)
    quiet = rms < 1e-3 * rms.max()
    # Frames next to speech may still be closing (co-articulation); the rest of the silence is shut.
    deep = quiet & np.roll(quiet, 1) & np.roll(quiet, -1)
    assert deep.any() and np.all(drive["jaw"][deep] < 0.02)
    assert drive["jaw"][~quiet].max() > 0.5


def test_frames_change_only_near_the_face(animator, prepared, portrait):
    face = prepared.face
    x1, y1, x2, y2 = face.box
    fw, fh = x2 - x1, y2 - y1
    near = np.zeros(portrait.image.shape[:2], bool)
    near[max(0, int(y1 - fh)) : int(y2 + fh), max(0, int(x1 - fw)) : int(x2 + fw)] = True
    silent = render(animator, prepared, Audio(np.zeros(32000, np.float32), 16000))
    speech = render(animator, prepared, tone_speech(["a", "b", "c", "d", "e"]))
    base = portrait.image.astype(np.int16)
    for frames in (silent, speech):
        changed = (np.abs(frames.astype(np.int16) - base).max(axis=-1) > 0).any(axis=0)
        assert changed.any() and not changed[~near].any()
    # Speaking moves the mouth much more than silence does.
    mx1, my1 = int(face.landmarks[61, 0]), int(face.landmarks[13, 1])
    mx2, my2 = int(face.landmarks[291, 0]), int(face.landmarks[152, 1])
    mouth = (slice(my1, my2), slice(mx1, mx2))
    d_sil = np.abs(silent[:, mouth[0], mouth[1]].astype(np.int16) - base[mouth]).mean()
    d_spk = np.abs(speech[:, mouth[0], mouth[1]].astype(np.int16) - base[mouth]).mean()
    assert d_spk > 3 * d_sil


def test_blinks_close_the_eyes(prepared, portrait):
    anim = VisemeAnimator(blink_rate=40, head_motion=0, seed=2)
    frames = render(anim, prepared, Audio(np.zeros(16000 * 4, np.float32), 16000))
    lm = prepared.face.landmarks
    x1, x2 = int(lm[33, 0]), int(lm[133, 0]) + 1
    y1, y2 = int(lm[159, 1]), int(lm[145, 1]) + 1
    diffs = np.abs(frames[:, y1:y2, x1:x2].astype(np.int16) - portrait.image[y1:y2, x1:x2]).mean(axis=(1, 2, 3))
    assert (diffs > 10).sum() >= 2 and (diffs == 0).sum() > len(frames) // 2


def test_phoneme_classes():
    assert viseme_of("ˈ") is None
    assert viseme_of("_") == Viseme() and viseme_of(" ") == Viseme()
    assert viseme_of("m").open == 0.0 and viseme_of("m").press == 1.0
    assert viseme_of("a").open > viseme_of("i").open > viseme_of("m").open
    assert viseme_of("oʊ").round > 0.5 and viseme_of("i").spread > 0.5
    assert viseme_of("f").tuck == 1.0 and viseme_of("θ").tongue == 1.0


def test_phonemes_shape_the_mouth():
    """Same loudness, different phonemes: bilabials close the jaw, open vowels open it."""
    sr, n_s = 16000, 16000
    samples = (0.3 * np.sin(2 * np.pi * 150 * np.arange(n_s) / sr)).astype(np.float32)
    ph_open = tuple(PhonemeTiming("a", 0.0, 1.0) for _ in range(1))
    ph_closed = tuple(PhonemeTiming("m", 0.0, 1.0) for _ in range(1))
    d_open = compute_drive(Audio(samples, sr, phonemes=ph_open), 20, 20)
    d_closed = compute_drive(Audio(samples, sr, phonemes=ph_closed), 20, 20)
    assert d_open["jaw"][5:15].mean() > 2 * d_closed["jaw"][5:15].mean()
    assert np.all(d_closed["press"][5:15] > 0.95) and np.all(d_open["press"] < 0.05)


def test_no_face(animator):
    grad = np.tile(np.linspace(0, 255, 256, dtype=np.float32)[None, :, None], (256, 1, 3)).astype(np.uint8)
    with pytest.raises(NoFaceError):
        animator.prepare(Portrait(grad))


def test_two_faces(animator, portrait):
    double = Portrait(np.concatenate([portrait.image, portrait.image], axis=1))
    with pytest.raises(MultipleFacesError):
        animator.prepare(double, multiple_faces="refuse")
    assert animator.prepare(double, multiple_faces="largest").face is not None


def test_tiny_face(animator, portrait):
    import cv2

    tiny = cv2.resize(portrait.image, (160, 160), interpolation=cv2.INTER_AREA)
    with pytest.raises(FaceTooSmallError):
        animator.prepare(Portrait(tiny))


def test_bad_config():
    with pytest.raises(ConfigError):
        VisemeAnimator(mouth_scale=-1)
    with pytest.raises(ConfigError):
        VisemeAnimator(chunk_size=0)
    with pytest.raises(ConfigError):
        VisemeAnimator(blink_rate=1000)
    with pytest.raises(ConfigError):
        VisemeAnimator(emotion="angry")
    with pytest.raises(ConfigError):
        VisemeAnimator(gaze=-1)
    with pytest.raises(ConfigError, match="render_threads"):
        VisemeAnimator(render_threads=0)


def test_missing_mediapipe(monkeypatch):
    monkeypatch.setitem(sys.modules, "mediapipe", None)
    with pytest.raises(MissingDependencyError) as info:
        VisemeAnimator(landmarks="mediapipe").load()
    assert info.value.extra == "viseme" and info.value.package == "mediapipe"
    monkeypatch.setitem(sys.modules, "ai_edge_litert", None)  # neither backend: "auto" names both ways out
    with pytest.raises(MissingDependencyError) as info:
        VisemeAnimator().load()
    assert info.value.extra == "viseme" and info.value.package == "mediapipe"
    assert "litert" in str(info.value)


@pytest.mark.slow
def test_mouth_scale_widens_the_opening(portrait):
    audio = tone_speech(["a", "b"])
    spans = []
    for scale in (0.5, 1.0, 1.6):
        anim = VisemeAnimator(mouth_scale=scale, blink_rate=0, head_motion=0)
        prep = anim.prepare(portrait)
        frames = render(anim, prep, audio)
        spans.append(np.abs(frames.astype(np.int16) - portrait.image).sum())
    assert spans[0] < spans[1] < spans[2]


def test_avatar_passes_text_and_emotion(portrait):
    from talkinghead import Avatar
    from talkinghead.cache import ModelCache
    from talkinghead.testing import FakeTTS, MemoryWriter

    writer = MemoryWriter()
    anim = VisemeAnimator(seed=1, blink_rate=0, head_motion=0, gaze=0)
    avatar = Avatar(portrait, tts=FakeTTS(), animator=anim, writer=writer, cache=ModelCache())
    assert avatar.synthesize("hello there friend").text == "hello there friend"
    videos = {}
    for emotion in ("happy", "sad"):
        avatar.say("hello there friend", "unused.mp4", emotion=emotion)
        videos[emotion] = writer.frames.copy()
    assert np.abs(videos["happy"].astype(np.int16) - videos["sad"]).max() > 20
    with pytest.raises(ConfigError):
        avatar.say("hello there", "unused.mp4", emotion="furious")


def test_avatar_refuses_emotion_for_animators_without_it(portrait):
    from talkinghead import Avatar
    from talkinghead.cache import ModelCache
    from talkinghead.testing import FakeAnimator, FakeTTS, MemoryWriter

    avatar = Avatar(portrait, tts=FakeTTS(), animator=FakeAnimator(), writer=MemoryWriter(), cache=ModelCache())
    with pytest.raises(ConfigError, match="does not show emotions"):
        avatar.say("hello there", "unused.mp4", emotion="happy")


def test_emotion_from_the_command_line():
    """``--set animator.emotion=happy`` reaches the animator as the name; bad names are refused."""
    from talkinghead.cli.common import typed_config

    assert typed_config("animator", "viseme", {"emotion": "happy", "gaze": "0.5"}) == {"emotion": "happy", "gaze": 0.5}
    with pytest.raises(ConfigError):
        VisemeAnimator(**typed_config("animator", "viseme", {"emotion": "furious"}))
