"""Live sessions with fake stages: turns, captions, memory, barge-in, deadlines, errors, asyncio, VAD,
speech pushed by the app, and Avatar.stream / ask_stream."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator, Sequence

import numpy as np
import pytest

from talkinghead import Avatar, ModelCache
from talkinghead.errors import ConfigError, NothingUnderstoodError, TextError
from talkinghead.stages import frame_count
from talkinghead.streaming import Caption, TurnEnded, TurnStarted, UserSpeechEnded, UserSpeechStarted
from talkinghead.streaming.adapters import stream_answer, stream_speech
from talkinghead.testing import FakeAnimator, FakeASR, FakeLLM, FakeTTS, MemoryWriter, tone_speech
from talkinghead.values import Audio, ChatMessage

SPF = 960


def make(portrait, **kw):
    kw.setdefault("tts", FakeTTS())
    kw.setdefault("animator", FakeAnimator(size=32))
    kw.setdefault("writer", MemoryWriter())
    kw.setdefault("llm", FakeLLM())
    return Avatar(portrait, cache=ModelCache(), **kw)


def until_done(session, turn, limit=5000):
    """Chunks until ``turn`` ended and no speech is left (bounded)."""
    out = []
    for chunk in session:
        out.append(chunk)
        if turn.done and not session.speaking:
            return out
        assert len(out) < limit, "the turn never ended"
    return out


def test_ask_speaks_sentence_by_sentence_and_remembers(small_portrait):
    llm = FakeLLM()
    llm.enqueue("Hello there! I am fine. **Thanks** for asking.", "Yes.")
    av = make(small_portrait, llm=llm)
    session = av.live(chunk_frames=4)
    turn = session.ask("How are you?")
    chunks = until_done(session, turn)
    assert turn.result(1).status == "done"
    speech = [c for c in chunks if c.kind == "speech"]
    texts = [c.text for c in speech]
    assert list(dict.fromkeys(texts)) == ["Hello there!", "I am fine.", "Thanks for asking."]
    assert sum(c.segment_end for c in speech) == 3
    assert turn.answer == "Hello there! I am fine. Thanks for asking."
    assert session.conversation.history == (("How are you?", turn.answer),)
    # the next question carries the exchange to the LLM
    turn2 = session.ask("And you?")
    until_done(session, turn2)
    assert [m.content for m in llm.requests[-1]][-3:] == ["How are you?", turn.answer, "And you?"]
    events = session.poll_events()
    kinds = [type(e) for e in events]
    assert kinds[:2] == [TurnStarted, Caption]
    captions = [e for e in events if isinstance(e, Caption) and e.role == "assistant" and e.turn == turn.id]
    assert [c.text for c in captions] == ["Hello there!", "I am fine.", "Thanks for asking."]
    firsts: dict = {}
    for c in speech:
        firsts.setdefault(c.text, c.first_frame)
    assert [c.frame for c in captions] == [firsts[c.text] for c in captions]  # in sync with the video
    ended = [e for e in events if isinstance(e, TurnEnded)]
    assert [e.status for e in ended] == ["done", "done"]
    m = ended[0].metrics
    assert m.frames == sum(c.n_frames for c in speech) and m.av_drift_samples == 0
    assert m.first_frame_s is not None and m.first_audio_s is not None and m.llm_first_sentence_s is not None
    assert m.cold and not ended[1].metrics.cold
    session.close()


def test_interrupt_forgets_what_was_not_heard(small_portrait):
    llm = FakeLLM()
    llm.enqueue("First sentence here. Second one is longer than the first. Third one.")
    av = make(small_portrait, llm=llm)
    session = av.live(chunk_frames=2)
    turn = session.ask("Tell me something")
    heard = []
    for chunk in session:
        heard.append(chunk)
        if chunk.text == "Second one is longer than the first.":
            break
    assert session.interrupt() is turn
    nxt = next(session)
    assert nxt.kind == "idle" and nxt.first_frame == heard[-1].end_frame
    assert turn.status == "interrupted" and turn.answer == "First sentence here."
    assert session.conversation.history == (("Tell me something", "First sentence here."),)
    assert turn.metrics.barge_in_ms == 0.0  # unpaced: the very next chunk is idle
    # interrupted before anything was heard: nothing is remembered
    llm.enqueue("Never heard.")
    turn2 = session.ask("Again?")
    session.interrupt()
    assert turn2.status == "interrupted"
    assert all(c.kind == "idle" for c in session.chunks(max_frames=10))
    assert len(session.conversation.history) == 1
    session.close()


class SlowLLM(FakeLLM):
    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay

    def stream(self, messages: Sequence[ChatMessage]) -> Iterator[str]:
        time.sleep(self.delay)
        yield from super().stream(messages)


def test_turn_deadline_returns_to_idle(small_portrait):
    av = make(small_portrait, llm=SlowLLM(3.0))
    session = av.live(turn_timeout=0.3)
    turn = session.ask("Are you there?")
    chunks = list(session.chunks(max_frames=5))
    assert turn.result(5).status == "deadline" and "turn_timeout" in turn.error
    assert all(c.kind != "speech" for c in chunks)
    assert session.conversation.history == ()
    session.close()


class BrokenTTS(FakeTTS):
    def synthesize(self, text, *, voice=None):
        if "boom" in text:
            raise RuntimeError("synthesis failed")
        return super().synthesize(text, voice=voice)


def test_a_failing_stage_ends_the_turn_not_the_stream(small_portrait):
    llm = FakeLLM()
    llm.enqueue("Fine words. Then boom here.")
    av = make(small_portrait, llm=llm, tts=BrokenTTS())
    session = av.live()
    turn = session.ask("Go")
    chunks = list(session.chunks(max_frames=60))
    assert turn.status == "error" and "synthesis failed" in turn.error
    assert chunks[-1].kind == "idle"
    assert [c.first_frame for c in chunks] == list(range(60))
    session.close()


def test_nothing_understood_never_reaches_the_llm(small_portrait):
    asr = FakeASR(default="hm")
    llm = FakeLLM()
    av = make(small_portrait, asr=asr, llm=llm)
    session = av.live()
    turn = session.ask(tone_speech(["a", "b"]))
    assert turn.result(5).status == "nothing_understood"
    assert isinstance(turn.exception, NothingUnderstoodError) and llm.requests == []
    session.close()


def test_user_audio_starts_a_turn_and_barges_in(small_portrait):
    asr = FakeASR()
    asr.enqueue("what is your name", "stop please")
    llm = FakeLLM()
    llm.enqueue("My name is Ada. I live in this picture. It is a nice picture to live in.", "Okay.")
    av = make(small_portrait, asr=asr, llm=llm)
    session = av.live(vad="energy", chunk_frames=2)
    user = tone_speech(["what", "is", "your", "name"], sample_rate=16000, gap_s=0.05)
    pause = np.zeros(16000, np.float32)
    for piece in np.array_split(np.concatenate([pause, user.samples, pause]), 37):  # 48 kHz int16 pieces
        session.push_user_audio((np.repeat(piece, 3) * 32767).astype(np.int16), 48000)
    turn = session.current_turn
    assert turn is not None and turn.source == "audio"
    speech = [c for c in session.chunks(max_frames=40) if c.kind == "speech"]
    assert speech and turn.question == "what is your name"
    assert asr.calls[0].sample_rate == 16000 and 1.0 < asr.calls[0].duration < 2.5
    # the user speaks while the avatar answers: barge-in
    for piece in np.array_split(np.concatenate([user.samples, pause]), 9):
        session.push_user_audio(piece, 16000)
    assert turn.status == "interrupted"
    events = session.poll_events()
    assert any(isinstance(e, UserSpeechStarted) for e in events)
    assert sum(isinstance(e, UserSpeechEnded) for e in events) == 2
    second = session.current_turn
    assert second is not None and second.id != turn.id
    until_done(session, second)
    assert second.status == "done" and second.question == "stop please"
    session.close()


def test_external_speech_segments_and_clear(small_portrait):
    av = make(small_portrait, llm=None)
    session = av.live(chunk_frames=3)
    voice = tone_speech(["x", "y", "z"], sample_rate=16000)
    pcm = (voice.samples * 32767).astype(np.int16)
    for piece in np.array_split(pcm, 13):
        session.push_speech(piece, 16000, text="pushed")
    session.end_speech()
    chunks = []
    for chunk in session:
        chunks.append(chunk)
        if chunk.segment_end:
            break
    expected = frame_count(voice.resample(24000).duration, 25)
    assert abs(sum(c.n_frames for c in chunks) - expected) <= 1
    assert all(c.kind == "speech" and c.text == "pushed" for c in chunks)
    np.testing.assert_allclose(
        np.concatenate([c.samples for c in chunks])[: len(voice.resample(24000).samples)],
        voice.resample(24000).samples, atol=2e-4,  # int16 quantisation
    )
    assert next(session).kind == "idle"
    # a second segment, cleared half-way (LiveKit's clear_buffer)
    for piece in np.array_split(pcm, 5):
        session.push_speech(piece, 16000)
    session.end_speech()  # (unpaced, a clip animator waits for the end of a segment)
    first = next(session)
    assert first.kind == "speech"
    session.clear()
    assert next(session).kind == "idle"
    ended = [e for e in session.poll_events() if isinstance(e, TurnEnded)]
    assert [e.status for e in ended] == ["done", "interrupted"]
    session.close()


def test_external_speech_changing_rate_stays_one_segment(small_portrait):
    """A new sample rate inside a pushed segment continues it (one segment_end, one turn)."""
    av = make(small_portrait, llm=None)
    session = av.live(chunk_frames=2)
    voice = tone_speech(["x", "y"], sample_rate=16000)
    half = len(voice.samples) // 2
    session.push_speech(voice.samples[:half], 16000)
    session.push_speech(Audio(voice.samples[half:], 16000).resample(48000))
    session.end_speech()
    chunks = []
    for chunk in session:
        chunks.append(chunk)
        if chunk.segment_end:
            break
        assert len(chunks) < 500
    assert abs(sum(c.n_frames for c in chunks) - voice.duration * 25) <= 1
    assert all(c.kind == "speech" for c in chunks) and len({c.turn for c in chunks}) == 1
    assert next(session).kind == "idle"
    ended = [e for e in session.poll_events() if isinstance(e, TurnEnded)]
    assert [e.status for e in ended] == ["done"]
    session.close()


@pytest.mark.slow
def test_paced_stream_waits_for_late_speech_before_filling_it(small_portrait):
    """underrun_wait: speech whose second half comes late is not stretched with silence."""
    import threading

    voice = tone_speech(["x", "y"], sample_rate=16000)
    half = len(voice.samples) // 2
    expected = voice.duration * 25
    counts = {}
    for wait in (0.0, 2.0):
        session = make(small_portrait, llm=None).live(realtime=True, underrun_wait=wait)
        next(session)
        session.push_speech(voice.samples[:half], 16000)
        late = threading.Timer(1.0, lambda s=session: (s.push_speech(voice.samples[half:], 16000), s.end_speech()))
        late.start()
        speech = 0
        for chunk in session:
            speech += chunk.kind == "speech"
            if chunk.segment_end:
                break
        late.join()
        session.close()
        counts[wait] = speech
    assert abs(counts[2.0] - expected) <= 1, counts  # waited: exactly the audio
    assert counts[0.0] > expected + 5, counts  # filled at once: about 0.6 s of silence inserted in the middle


def test_async_interface(small_portrait):
    llm = FakeLLM()
    llm.enqueue("Async works fine.")
    av = make(small_portrait, llm=llm)

    async def main():
        async with av.live(chunk_frames=5) as session:
            turn = session.ask("Does async work?")
            got = []
            async for chunk in session:
                got.append(chunk)
                if turn.done and not session.speaking:
                    break
            done = await turn
            return done, got

    turn, chunks = asyncio.run(main())
    assert turn.status == "done" and any(c.text == "Async works fine." for c in chunks)

    async def one():
        return [c async for c in av.astream("one two")]

    chunks = asyncio.run(one())
    assert chunks and all(c.kind == "speech" for c in chunks) and chunks[-1].segment_end


@pytest.mark.slow
def test_realtime_pacing_idles_while_the_answer_is_prepared(small_portrait):
    av = make(small_portrait, llm=SlowLLM(0.5))
    with av.live(realtime=True, chunk_frames=1) as session:
        t0 = time.perf_counter()
        turn = session.ask("Slow?")
        chunks = []
        for chunk in session:
            chunks.append(chunk)
            if turn.done and not session.speaking:
                break
        elapsed = time.perf_counter() - t0
    speech = [c for c in chunks if c.kind == "speech"]
    first = chunks.index(speech[0])
    assert first >= 5 and all(c.kind == "listening" for c in chunks[:first])  # idle while the LLM thinks
    stream_seconds = sum(c.n_frames for c in chunks) / 25
    assert elapsed >= stream_seconds - 0.1  # never ahead of the wall clock by more than the lead


def test_avatar_stream_one_utterance(small_portrait):
    tts = FakeTTS()
    av = make(small_portrait, tts=tts, llm=None)
    chunks = list(av.stream("One two. Three four five.", chunk_frames=4))
    texts = list(dict.fromkeys(c.text for c in chunks))
    assert texts == ["One two.", "Three four five."]
    per = {t: sum(c.n_frames for c in chunks if c.text == t) for t in texts}
    for t in texts:
        assert per[t] == -(-len(tts.synthesize(t).resample(24000).samples) // SPF)
    assert [c.first_frame for c in chunks] == list(np.cumsum([0] + [c.n_frames for c in chunks[:-1]]))
    with pytest.raises(TextError):
        av.stream("   ")
    audio = tone_speech(["a", "b", "c"], sample_rate=22050)
    chunks = list(av.stream(audio, fps=20))
    assert chunks[0].fps == 20 and chunks[0].samples_per_frame == 1200
    assert sum(c.n_frames for c in chunks) == -(-len(audio.resample(24000).samples) // 1200)


def test_ask_stream_and_wrappers(small_portrait):
    llm = FakeLLM()
    llm.enqueue("Streamed answer. Two sentences.")
    av = make(small_portrait, llm=llm)
    chunks = list(av.ask_stream("Question?"))
    assert {c.text for c in chunks} == {"Streamed answer.", "Two sentences."}
    assert av.conversation.history == (("Question?", "Streamed answer. Two sentences."),)
    with pytest.raises(ConfigError):
        list(make(small_portrait, llm=None).ask_stream("no llm"))

    class CompleteOnly(FakeLLM):
        capabilities = frozenset()

    plain = CompleteOnly()
    plain.enqueue("one piece")
    assert list(stream_answer(plain, [ChatMessage("user", "q")])) == ["one piece"]
    pieces = list(stream_speech(FakeTTS(), "First. Second one."))
    assert [p.text for p in pieces] == ["First.", "Second one."] and all(isinstance(p.audio, Audio) for p in pieces)


def test_closed_session_refuses_work(small_portrait):
    session = make(small_portrait).live()
    session.close()
    with pytest.raises(ConfigError, match="closed"):
        session.say("hi")
    assert session.next_chunk() is None


def test_hostile_pushed_audio(small_portrait):
    av = make(small_portrait, llm=None)
    session = av.live(chunk_frames=5, vad="energy")
    bad = np.full(4000, np.nan, np.float32)
    bad[::3] = np.inf
    bad[1::3] = 7.0
    session.push_speech(bad, 16000)
    session.end_speech()
    session.push_user_audio(bad, 8000)
    chunks = list(session.chunks(max_frames=20))
    assert all(np.isfinite(c.samples).all() and np.abs(c.samples).max() <= 1.0 for c in chunks)
    with pytest.raises(ConfigError, match="sample_rate"):
        session.push_speech(np.zeros(10, np.float32))
    with pytest.raises(Exception, match="positive"):
        session.push_speech(np.zeros(10, np.float32), 0)
    with pytest.raises(Exception, match="numbers"):
        session.push_user_audio(np.array(["a", "b"]), 16000)
    session.close()


def test_text_only_questions_are_never_paths(small_portrait, tmp_path):
    llm = FakeLLM()
    av = make(small_portrait, llm=llm, asr=FakeASR())
    session = av.live()
    turn = session.ask("secret.wav", text_only=True)  # a client's text, not a server-side file
    assert turn.question == "secret.wav"
    until_done(session, turn)
    assert turn.status == "done" and llm.requests[-1][-1].content == "secret.wav"
    session.close()
    silent = list(av.stream(Audio(np.zeros(24000, np.float32), 24000)))  # silence is valid
    assert silent and not any(c.samples.any() for c in silent)
