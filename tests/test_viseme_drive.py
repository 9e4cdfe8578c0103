"""The viseme drive and expressions: windows of a stream, determinism, emotion from text (no rendering)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from talkinghead.backends.viseme.timeline import (
    CHANNELS,
    DRIVE_CONTEXT_S,
    DRIVE_LOOKAHEAD_S,
    audio_window,
    blink_curve,
    compute_drive,
    drive_window,
    gaze_curve,
)
from talkinghead.errors import ConfigError, MissingDependencyError
from talkinghead.expression import (
    Expression,
    ExpressionTrack,
    expression_from_text,
    expression_track_for_speech,
    resolve_emotion,
)
from talkinghead.testing import tone_speech
from talkinghead.values import Audio, PhonemeTiming, WordTiming

pytest.importorskip("vaderSentiment")

WORDS = ["one", "two", "three", "four", "five", "six", "seven", "eight"] * 4


@pytest.fixture(scope="module")
def long_speech():
    """~16 s of speech-like audio with phonemes of every class and pauses of several lengths."""
    audio = tone_speech(WORDS, word_s=0.35, gap_s=0.15)
    symbols = "a i u m f θ o e s w".split()
    phonemes = []
    for k, p in enumerate(audio.phonemes):
        if p.phoneme == "a":  # split each word into a consonant and a vowel
            mid = (p.start + p.end) / 2
            phonemes += [PhonemeTiming(symbols[k % 10], p.start, mid), PhonemeTiming(symbols[(k + 3) % 10], mid, p.end)]
        else:
            phonemes.append(p)
    samples = audio.samples.copy()
    samples[int(6.0 * 16000) : int(7.5 * 16000)] = 0.0  # a long pause
    return Audio(samples, 16000, phonemes=tuple(phonemes))


@pytest.mark.parametrize("fps", [25, 20])
def test_window_of_a_stream_matches_the_whole_clip(long_speech, fps):
    """Frames [a, b) computed from nearby audio only equal the whole clip's drive on those frames."""
    track = ExpressionTrack.constant(Expression()).then(3.0, Expression.named("happy")).then(9.0, Expression(sad=0.7))
    options = dict(seed=5, expression=track)
    whole = compute_drive(long_speech, fps, **options)
    n = len(whole)
    for a, b in [(0, 10), (5, 40), (int(3.1 * fps), int(5.3 * fps)), (int(7 * fps), int(8 * fps)), (n - 30, n)]:
        window = drive_window(long_speech, fps, a, b, **options)
        assert window.first_frame == a and len(window) == b - a
        np.testing.assert_allclose(window.values, whole.window(a, b).values, rtol=0, atol=1e-9)
    # More context than needed changes nothing; less context does (the check can fail).
    ctx = int(np.ceil(DRIVE_CONTEXT_S * fps))
    a, b = int(9 * fps), int(10 * fps)
    short = audio_window(long_speech, a - 2, b + int(np.ceil(DRIVE_LOOKAHEAD_S * fps)), fps)
    clipped = compute_drive(short, fps, len(short.samples) * fps // 16000, first_frame=a - 2, **options)
    assert not np.allclose(clipped.window(a, b).values, whole.window(a, b).values, atol=1e-6)
    assert ctx > 2


def test_curves_are_functions_of_global_time():
    t = (np.arange(2000) + 0.5) / 25
    blinks = blink_curve(t, 3, 15)
    gaze = gaze_curve(t, 3, 1.0)
    for a, b in [(0, 100), (777, 900), (1500, 2000)]:
        np.testing.assert_array_equal(blink_curve(t[a:b], 3, 15), blinks[a:b])
        np.testing.assert_array_equal(gaze_curve(t[a:b], 3, 1.0), gaze[a:b])
    onsets = ((blinks[1:] > 0.5) & (blinks[:-1] <= 0.5)).sum()
    assert 8 <= onsets <= 30  # ~15 per minute over 80 s
    jumps = (np.abs(np.diff(gaze, axis=0)).max(axis=1) > 1e-3).sum()
    assert jumps > 20 and np.abs(gaze).max() <= 0.13
    assert not np.array_equal(blink_curve(t, 4, 15), blinks)


def test_loudness_is_normalised_locally(long_speech):
    """Making the last seconds ten times louder leaves the first seconds' mouth alone."""
    fps = 25
    louder = long_speech.samples.copy()
    louder[int(12 * 16000) :] *= 10
    base = compute_drive(long_speech, fps, seed=1)
    loud = compute_drive(Audio(louder, 16000, phonemes=long_speech.phonemes), fps, seed=1)
    early = slice(0, int(9 * fps))
    np.testing.assert_allclose(loud["jaw"][early], base["jaw"][early], atol=1e-9)
    # A fixed reference level follows the absolute loudness instead.
    quiet = Audio(long_speech.samples * 0.25, 16000, phonemes=long_speech.phonemes)
    fixed = compute_drive(long_speech, fps, level_ref=0.2)["jaw"]
    fixed_quiet = compute_drive(quiet, fps, level_ref=0.2)["jaw"]
    assert fixed_quiet.max() < 0.6 * fixed.max()


def test_head_motion_is_bounded_and_does_not_drift():
    audio = tone_speech(["word"] * 150, word_s=0.3, gap_s=0.1)  # 60 s of speech
    d = compute_drive(audio, 25, seed=2)
    head = np.stack([d["head_x"], d["head_y"], d["head_roll"]], axis=1)
    assert np.abs(head[:, :2]).max() < 0.04 and np.abs(head[:, 2]).max() < 3.0
    first, last = head[: 25 * 10].mean(axis=0), head[-25 * 10 :].mean(axis=0)
    assert np.abs(first[:2] - last[:2]).max() < 0.01 and abs(first[2] - last[2]) < 0.6
    # More motion while speaking than in silence.
    silent = compute_drive(Audio(np.zeros(16000 * 20, np.float32), 16000), 25, seed=2)
    speed = lambda dr: np.abs(np.diff(dr["head_y"])).mean() + np.abs(np.diff(dr["head_x"])).mean()  # noqa: E731
    assert speed(d) > 1.5 * speed(silent)
    assert np.all(compute_drive(audio, 25, head_motion=0)["head_y"] == 0)


def test_bilabials_close_and_shapes_differ():
    sr = 16000
    samples = (0.3 * np.sin(2 * np.pi * 150 * np.arange(sr) / sr)).astype(np.float32)

    def drive(symbol):
        return compute_drive(Audio(samples, sr, phonemes=(PhonemeTiming(symbol, 0.0, 1.0),)), 20)

    u, i, m, f = drive("u"), drive("i"), drive("m"), drive("f")
    mid = slice(5, 15)
    assert u["round"][mid].min() > 0.8 and u["spread"][mid].max() < 0.1
    assert i["spread"][mid].min() > 0.8 and i["round"][mid].max() < 0.1
    assert m["press"][mid].min() > 0.95 and m["jaw"][mid].max() < 0.05
    assert f["tuck"][mid].min() > 0.9
    # A 60 ms /b/ between vowels still closes the lips fully on at least one frame.
    ph = (PhonemeTiming("a", 0.0, 0.47), PhonemeTiming("b", 0.47, 0.53), PhonemeTiming("a", 0.53, 1.0))
    b = compute_drive(Audio(samples, sr, phonemes=ph), 20)
    assert b["press"].max() > 0.95 and b["jaw"][np.argmax(b["press"])] < 0.05


def test_expression_from_text():
    happy = expression_from_text("I am so happy to see you, this is wonderful!")
    sad = expression_from_text("My dog died yesterday and I miss him so much.")
    worried = expression_from_text("I am worried, something could go wrong with the launch.")
    neutral = expression_from_text("The station orbits the earth every ninety minutes.")
    surprised = expression_from_text("Wow, really?! I did not expect that!")
    assert happy.dominant == "happy" and happy.happy > 0.7
    assert sad.dominant == "sad"
    assert worried.dominant == "concerned"
    assert neutral.dominant == "neutral"
    assert surprised.surprised > 0.5
    # A listener answers bad news with concern, not sadness.
    assert expression_from_text("My dog died yesterday.", listener=True).dominant == "concerned"
    assert expression_from_text("") == Expression()


def test_british_spellings_read_like_american_ones():
    from talkinghead.expression import _british_variants

    # VADER knows "favorite" but not "favourite": the same question got a smile in one spelling only
    for british, american in [("What is your favourite planet?", "What is your favorite planet?"),
                              ("That is a very favourable result.", "That is a very favorable result."),
                              ("The mood was sombre and humourless.", "The mood was somber and humorless.")]:
        assert expression_from_text(british) == expression_from_text(american) != Expression(), british
    # only words the lexicon lacks, and not where British keeps -or- as well (glamorous, honorary)
    added = _british_variants({"favorite": 2.0, "favour": 1.9, "favor": 1.9, "glamorous": 2.3, "honorary": 0.3,
                               "humorist": 0.5, "vigoroso": 0.5, "error": -1.0})
    assert added == {"favourite": 2.0}


def test_expression_track_eases_smoothly():
    track = ExpressionTrack.constant(Expression()).then(1.0, Expression.named("happy")).then(1.2, Expression(sad=1.0))
    t = np.arange(0, 3, 0.01)
    w = track.at(t)
    assert np.all(w[t < 1.0] == 0)
    assert np.abs(np.diff(w, axis=0)).max() < 0.05  # no jumps at 100 Hz
    assert w[-1, 1] == pytest.approx(1.0) and w[-1, 0] == pytest.approx(0.0)
    # Shifting a clip's track onto a stream's clock.
    np.testing.assert_allclose(track.shifted(10).at(t + 10), w)


def test_auto_follows_the_sentences():
    text = "I am so happy today, this is wonderful! I am so sorry, the news is terrible."
    audio = tone_speech(text.split(), word_s=0.3, gap_s=0.1)
    audio = Audio(audio.samples, audio.sample_rate, phonemes=audio.phonemes, text=text)
    track = resolve_emotion("auto", audio=audio)
    d = compute_drive(audio, 20, expression=track)
    n = len(d)
    first, second = slice(int(0.15 * n), int(0.4 * n)), slice(int(0.75 * n), n)
    assert d["smile"][first].mean() > 0.5 and d["smile"][second].mean() < 0.1
    assert d["frown"][second].mean() > 0.4 and d["brow_inner"][second].mean() > 0.4
    # With word timings, each sentence starts at its first word.
    words = tuple(WordTiming(w, 0.4 * k, 0.4 * k + 0.3) for k, w in enumerate(text.split()))
    timed = expression_track_for_speech(text, Audio(audio.samples, 16000, words=words))
    assert timed.keys[1].time == pytest.approx(0.4 * 8 - 0.3)  # the 9th word


def test_emotion_values_are_checked(monkeypatch):
    with pytest.raises(ConfigError):
        resolve_emotion("angry")
    with pytest.raises(ConfigError):
        Expression(happy=1.5)
    with pytest.raises(ConfigError):
        resolve_emotion(3)
    assert resolve_emotion("auto").at(np.zeros(1)).max() == 0  # no text: neutral
    monkeypatch.setitem(sys.modules, "vaderSentiment", None)
    monkeypatch.setitem(sys.modules, "vaderSentiment.vaderSentiment", None)
    from talkinghead import expression

    expression._analyzer.cache_clear()
    try:
        with pytest.raises(MissingDependencyError) as info:
            expression_from_text("hello there")
        assert info.value.extra == "viseme"
    finally:
        expression._analyzer.cache_clear()


def test_channels_are_named_and_finite(long_speech):
    d = compute_drive(long_speech, 20, seed=0, expression=ExpressionTrack.constant(Expression(surprised=1.0)))
    assert d.values.shape == (len(d), len(CHANNELS)) and np.isfinite(d.values).all()
    assert d["brow_up"].min() > 0.9 and d["eye_wide"].min() > 0.8
    assert d["blink"].max() > 0.9
