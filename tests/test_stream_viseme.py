"""Live streams of the viseme animator: windowed drive, idle ↔ speech ↔ barge-in frame by frame, threads."""

from __future__ import annotations

import threading
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("mediapipe")
pytest.importorskip("cv2")

from talkinghead import Avatar, ModelCache  # noqa: E402
from talkinghead.backends.viseme import VisemeAnimator  # noqa: E402
from talkinghead.backends.viseme.timeline import DRIVE_LOOKAHEAD_S  # noqa: E402
from talkinghead.io import load_image  # noqa: E402
from talkinghead.stages import AnimatorStream  # noqa: E402
from talkinghead.testing import FakeLLM, FakeTTS, MemoryWriter, tone_speech  # noqa: E402
from talkinghead.values import Audio, PhonemeTiming, Portrait  # noqa: E402

PORTRAIT = Path(__file__).resolve().parents[1] / "assets" / "portrait_astronaut.png"
FPS, RATE, SPF = 25, 24000, 960


@pytest.fixture(scope="module")
def portrait():
    import cv2

    return Portrait(cv2.resize(load_image(PORTRAIT).image, (256, 256), interpolation=cv2.INTER_AREA))


def speech(words=12) -> Audio:
    """Tone speech with phoneme boundaries off the 200 Hz co-articulation grid, padded to whole frames."""
    audio = tone_speech([f"w{i}" for i in range(words)], sample_rate=RATE, word_s=0.2913, gap_s=0.1171)
    n = -(-len(audio.samples) // SPF)
    return Audio(np.pad(audio.samples, (0, n * SPF - len(audio.samples))), RATE, phonemes=audio.phonemes)


@pytest.mark.slow
def test_idle_motion_is_a_function_of_the_global_frame(portrait):
    """Idle frames of a stream that started at frame 120 equal frames 120.. of one that started at 0."""
    animator = VisemeAnimator(seed=2, blink_rate=30)
    prepared = animator.prepare(portrait)
    whole = animator.open_stream(prepared, fps=Fraction(FPS), sample_rate=RATE)
    frames = np.concatenate([whole.render(20).frames for _ in range(8)])
    late = animator.open_stream(prepared, fps=Fraction(FPS), sample_rate=RATE, first_frame=120)
    part = np.concatenate([late.render(10).frames for _ in range(4)])
    np.testing.assert_array_equal(part, frames[120:160])
    assert np.abs(np.diff(frames.astype(np.int16), axis=0)).max() > 0  # it moves (blinks, head, eyes)


def test_stream_renders_what_the_clip_renders(portrait):
    animator = VisemeAnimator(seed=1)
    prepared = animator.prepare(portrait)
    audio = speech(6)
    clip = np.concatenate([c.frames for c in animator.animate(prepared, audio, fps=FPS)])
    stream = animator.open_stream(prepared, fps=Fraction(FPS), sample_rate=RATE)
    assert isinstance(stream, AnimatorStream)
    stream.push(audio)
    stream.end_speech()
    assert stream.pending() == len(clip) == stream.ready()
    out = []
    while stream.pending():
        out.append(stream.render(min(3, stream.pending())).frames)
    frames = np.concatenate(out)
    diff = np.abs(frames.astype(int) - clip.astype(int))
    assert diff.mean() < 0.05
    assert np.mean(diff.reshape(len(frames), -1).max(axis=1) <= 8) > 0.9


def test_stream_lookahead_and_partial_frames(portrait):
    animator = VisemeAnimator(seed=1)
    stream = animator.open_stream(animator.prepare(portrait), fps=Fraction(FPS), sample_rate=RATE, first_frame=100)
    audio = speech(3)
    stream.push(Audio(audio.samples[: 30 * SPF + 5], RATE))
    assert stream.pending() == 30  # whole frames only until the speech ends
    assert stream.ready() == 30 - int(np.ceil(DRIVE_LOOKAHEAD_S * FPS))
    with pytest.raises(ValueError, match="pending"):
        stream.render(31)
    chunk = stream.render(4)
    assert chunk.start == 100 and len(chunk) == 4 and stream.next_frame == 104
    stream.end_speech()
    assert stream.pending() == 27  # 26 whole frames and the padded partial one
    stream.clear()
    assert stream.pending() == 0
    assert stream.render(2).start == 104


def mouth_box(avatar: Avatar) -> tuple[slice, slice]:
    """The lower half of the detected face box, where the mouth is."""
    x1, y1, x2, y2 = avatar._prepared().face.box
    return slice(int(y1 + 0.5 * (y2 - y1)), int(y2 + 0.2 * (y2 - y1))), slice(int(x1), int(x2))


def test_idle_speech_barge_in_frame_by_frame(portrait):
    """Frame counter continuous, mouth closed (frames equal the portrait) in idle, speech chunks carry
    exactly the TTS samples, and the stream is back to idle within 100 ms of an interruption."""
    tts = FakeTTS(sample_rate=RATE)
    animator = VisemeAnimator(blink_rate=0, head_motion=0, gaze=0, emotion="neutral")  # idle = the portrait
    jaw: dict[int, float] = {}
    drive = animator.drive

    def spy(*args, **kwargs):
        d = drive(*args, **kwargs)
        for i, v in enumerate(d["jaw"]):
            if d.first_frame + i >= session._stream.next_frame:  # a window's context rows were rendered before
                jaw[d.first_frame + i] = float(v)  # later windows overwrite: the rows that get rendered
        return d

    animator.drive = spy
    av = Avatar(portrait, tts=tts, animator=animator, llm=FakeLLM(), writer=MemoryWriter(), cache=ModelCache())
    session = av.live(chunk_frames=1)
    image = session.avatar.portrait.image
    frame = 0

    def take(n):
        nonlocal frame
        out = []
        for _ in range(n):
            chunk = next(session)
            assert chunk.first_frame == frame and chunk.first_sample == frame * SPF
            assert chunk.fps == FPS and len(chunk.samples) == chunk.n_frames * SPF
            frame += chunk.n_frames
            out.append(chunk)
        return out

    for chunk in take(10):
        assert chunk.kind == "idle" and not chunk.samples.any()
        assert np.array_equal(chunk.frames[0], image)  # mouth closed, nothing moves

    turn = session.say("one two three four five six seven")
    spoken = tts.synthesize("one two three four five six seven")  # what the stream must carry
    speech_chunks = take(30)
    assert all(c.kind == "speech" and c.turn == turn.id for c in speech_chunks)
    start = speech_chunks[0].first_frame
    samples = np.concatenate([c.samples for c in speech_chunks])
    np.testing.assert_array_equal(samples, spoken.samples[: len(samples)])  # aligned to the sample
    ys, xs = mouth_box(av)
    moving = [np.abs(c.frames[0][ys, xs].astype(int) - image[ys, xs]).max() for c in speech_chunks]
    assert max(moving) > 30  # the mouth opens
    assert start == 10

    interrupted = session.interrupt()
    assert interrupted is turn and turn.status == "interrupted"
    after = take(6)
    assert all(c.kind == "idle" for c in after) and not any(c.samples.any() for c in after)
    assert turn.metrics.barge_in_ms is not None and turn.metrics.barge_in_ms <= 100
    closed_from = after[0].first_frame + int(np.floor(0.1 * FPS))  # within 100 ms of stream time
    assert all(jaw[c.first_frame] == 0 for c in after if c.first_frame >= closed_from)  # the mouth has closed
    # everything settles back to the still portrait once the lips' "talking" relaxation (held 1.1 s
    # after speech by the viseme drive) has faded
    later = take(40)
    assert all(c.kind == "idle" for c in later) and np.array_equal(later[-1].frames[0], image)

    turn2 = session.say("again")
    rest = []
    while True:
        chunk = take(1)[0]
        rest.append(chunk)
        if chunk.segment_end:
            break
    assert turn2.result(5).status == "done"
    assert all(c.kind == "speech" for c in rest)
    assert sum(c.n_frames for c in rest) == -(-len(tts.synthesize("again").resample(RATE).samples) // SPF)
    assert all(c.kind == "idle" for c in take(45)) and np.array_equal(take(1)[0].frames[0], image)
    session.close()
    assert next(session, None) is None


@pytest.mark.slow
def test_sessions_in_threads_share_the_models(portrait):
    av = Avatar(portrait, tts=FakeTTS(), animator=VisemeAnimator(seed=4), writer=MemoryWriter(), cache=ModelCache())
    av.preload()

    def run(out: list) -> None:
        out.extend(c.frames for c in av.stream("one two three four", chunk_frames=3))

    alone: list = []
    run(alone)
    results = [[] for _ in range(3)]
    threads = [threading.Thread(target=run, args=(r,)) for r in results]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    expected = np.concatenate(alone)
    for r in results:
        np.testing.assert_array_equal(np.concatenate(r), expected)


def test_listening_face_follows_the_users_words(portrait):
    from talkinghead.expression import expression_from_text

    llm = FakeLLM()
    llm.enqueue("Oh no, that is terrible and sad news.")
    av = Avatar(portrait, tts=FakeTTS(sample_rate=RATE), animator=VisemeAnimator(emotion="auto"), llm=llm,
                writer=MemoryWriter(), cache=ModelCache())
    session = av.live(chunk_frames=2)
    next(session)
    turn = session.ask("My dog died yesterday and I am very sad.")
    next(session)
    track = session._stream.track
    listener = expression_from_text("My dog died yesterday and I am very sad.", listener=True)
    assert any(np.allclose(k.expression.as_array(), listener.as_array()) for k in track.keys)
    while not (turn.done and not session.speaking):
        next(session)
    spoken = expression_from_text("Oh no, that is terrible and sad news.")
    assert any(np.allclose(k.expression.as_array(), spoken.as_array()) for k in session._stream.track.keys)
    session.close()
