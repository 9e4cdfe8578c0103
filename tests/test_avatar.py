import numpy as np
import pytest

from talkinghead import Avatar, ModelCache
from talkinghead.errors import (
    AudioError,
    ConfigError,
    MultipleFacesError,
    NoFaceError,
    NothingUnderstoodError,
    OutputError,
    TextError,
)
from talkinghead.stages import frame_count
from talkinghead.testing import FakeAnimator, FakeASR, FakeEnhancer, FakeLLM, FakeTTS, MemoryWriter, tone_speech
from talkinghead.values import Face


def make(portrait, **kw):
    kw.setdefault("tts", FakeTTS())
    kw.setdefault("animator", FakeAnimator())
    kw.setdefault("writer", MemoryWriter())
    return Avatar(portrait, cache=ModelCache(), **kw)


def test_say_streams_the_right_number_of_frames(small_portrait, tmp_path):
    events = []
    av = make(small_portrait, fps=20, progress=lambda s, d, t: events.append((s, d, t)))
    video = av.say("one two three", tmp_path / "a.mp4")
    audio = av.tts.synthesize("one two three")
    n = frame_count(audio.duration, 20)
    assert video.n_frames == n == av.writer.frames.shape[0]
    assert events and events[-1] == ("animate", n, n)
    # the mouth bar follows the audio: frames differ over time
    assert av.writer.frames.std(axis=0).max() > 0


@pytest.mark.parametrize("fps", [12, 20, 25])
def test_fps_is_a_real_parameter(small_portrait, fps):
    av = make(small_portrait, fps=fps)
    video = av.speak(tone_speech(["a", "b"]))
    assert video.fps == fps
    assert video.n_frames == frame_count(tone_speech(["a", "b"]).duration, fps)


def test_portrait_preprocessing_is_cached(small_portrait):
    animator = FakeAnimator()
    av = make(small_portrait, animator=animator)
    av.say("hello world")
    av.say("again please")
    assert animator.prepare_calls == 1
    av.preload()
    assert animator.prepare_calls == 1


def test_enhancer_runs_on_every_frame(small_portrait):
    enh = FakeEnhancer(add=7)
    av = make(small_portrait, enhancer=enh)
    video = av.say("hi there")
    assert enh.frames_seen == video.n_frames


def test_stage_by_name_and_config(fakes, small_portrait):
    av = Avatar(small_portrait, tts="fake", animator=("fake", {"chunk_size": 3}), writer="memory", cache=ModelCache())
    assert av.animator.chunk_size == 3
    assert av.say("ok then").n_frames > 0
    with pytest.raises(ConfigError, match="neither a backend name"):
        Avatar(small_portrait, tts=object(), animator="fake", writer="memory")


@pytest.mark.parametrize("text", ["", "   \n\t "])
def test_empty_text(small_portrait, text):
    with pytest.raises(TextError, match="empty"):
        make(small_portrait).say(text)


def test_text_over_limit(small_portrait):
    with pytest.raises(TextError, match="limit"):
        make(small_portrait).say("word " * 2000)


def test_silence_renders_a_still_mouth_and_empty_audio_is_refused(small_portrait, caplog):
    av = make(small_portrait, fps=20)
    with caplog.at_level("WARNING", logger="talkinghead.avatar"):
        video = av.speak((np.zeros(5 * 16000, np.float32), 16000))  # speak() used to refuse silence
    assert video.n_frames == 100 and video.duration == pytest.approx(5.0)
    frames = av.writer.frames
    assert len(frames) == 100 and (frames == frames[0]).all()  # nothing moves
    assert "silent" in caplog.text and "mouth closed" in caplog.text
    with pytest.raises(AudioError, match="empty"):
        av.speak((np.zeros(0, np.float32), 16000))


def test_audio_shorter_than_a_frame(small_portrait):
    with pytest.raises(AudioError, match="shorter than one video frame"):
        make(small_portrait, fps=20).speak((np.full(400, 0.2, np.float32), 16000))


def test_face_policies(small_portrait):
    two = [Face((0, 0, 60, 60)), Face((60, 60, 128, 150))]
    assert make(small_portrait, animator=FakeAnimator(faces=two)).say("fine then").n_frames > 0
    with pytest.raises(MultipleFacesError, match="2 faces"):
        make(small_portrait, animator=FakeAnimator(faces=two), multiple_faces="refuse").say("no")
    with pytest.raises(NoFaceError):
        make(small_portrait, animator=FakeAnimator(faces=[])).say("no")


def test_output_path_errors(small_portrait, tmp_path):
    av = make(small_portrait)
    with pytest.raises(OutputError, match="directory"):
        av.say("hi there", tmp_path)
    with pytest.raises(OutputError, match="does not exist"):
        av.say("hi there", tmp_path / "missing" / "a.mp4")


def test_ask_remembers_previous_exchanges(small_portrait):
    llm = FakeLLM()
    llm.enqueue("I am fine. Thanks for asking.", "It is blue.")
    av = make(small_portrait, llm=llm)
    r1 = av.ask("How are you?")
    assert r1.answer.startswith("I am fine") and r1.video.n_frames > 0
    av.ask("What colour is the sky?")
    second = [(m.role, m.content) for m in llm.requests[1]]
    assert ("user", "How are you?") in second and ("assistant", "I am fine. Thanks for asking.") in second
    assert second[-1] == ("user", "What colour is the sky?")
    av.reset()
    av.ask("Hello again")
    assert [m.role for m in llm.requests[2]] == ["system", "user"]


def test_ask_with_audio_refuses_too_few_words_before_the_llm(small_portrait):
    asr, llm = FakeASR(), FakeLLM()
    asr.enqueue("um")
    av = make(small_portrait, asr=asr, llm=llm)
    with pytest.raises(NothingUnderstoodError, match="nothing was understood"):
        av.ask(tone_speech(["x", "y"]))
    with pytest.raises(NothingUnderstoodError):
        av.ask((np.zeros(8000, np.float32), 16000))
    assert llm.requests == []
    asr.enqueue("what is your name")
    reply = av.ask(tone_speech(["what", "is", "your", "name"]))
    assert reply.question == "what is your name" and reply.transcript is not None


def test_long_answers_are_cut_at_a_sentence(small_portrait):
    llm = FakeLLM()
    llm.enqueue("First sentence here. " + "More words follow in the second sentence. " * 30)
    av = make(small_portrait, llm=llm, max_answer_chars=60)
    assert make  # noqa
    assert av.ask("Tell me a story").answer == "First sentence here."


@pytest.mark.slow
def test_large_portraits_are_downscaled(small_portrait):
    big = np.repeat(np.repeat(small_portrait, 10, axis=0), 10, axis=1)
    av = make(big, max_size=512)
    assert max(av.portrait.size) == 512


def test_bad_fps(small_portrait):
    with pytest.raises(ConfigError, match="fps"):
        make(small_portrait, fps=0)
