"""Live sessions: an endless stream of A/V chunks from a portrait that listens, answers and idles.

A :class:`LiveSession` is created with :meth:`talkinghead.Avatar.live`. Iterate it (``for chunk in
session`` or ``async for chunk in session``) to get :class:`~talkinghead.values.AVChunk` after chunk;
between answers the chunks are idle (or listening) frames with silence. Turns come from text
(:meth:`LiveSession.ask`, :meth:`LiveSession.say`), from the user's audio
(:meth:`LiveSession.push_user_audio`: voice-activity detection ends a turn and the speech is
transcribed), or from speech the app synthesised itself (:meth:`LiveSession.push_speech`, the
voice-agent frameworks' way). Models are the Avatar's (loaded once, shared by every session);
everything that changes during a stream lives in the session.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import queue
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from ..conversation import Conversation
from ..errors import AudioError, ConfigError, NothingUnderstoodError, StageError, TalkingHeadError
from ..io import AudioLike, load_audio
from ..values import Audio, AVChunk, VoiceProfile
from .adapters import open_animator_stream, stream_speech
from .clock import STREAM_SAMPLE_RATE, StreamClock
from .engine import Segment, StreamEngine
from .events import Caption, SessionEvent, TurnEnded, TurnStarted, TurnStatus, UserSpeechEnded, UserSpeechStarted
from .resample import StreamResampler
from .turns import Turn, TurnCancelled, answer_sentences
from .vad import VAD_RATE, VoiceActivity, make_vad

if TYPE_CHECKING:
    from ..avatar import Avatar

log = logging.getLogger(__name__)

__all__ = ["LiveSession"]

#: Seconds of given audio pushed into the stream at a time by :meth:`LiveSession.speak`.
_SPEAK_PIECE_S = 0.5
#: Events kept for :meth:`LiveSession.poll_events` (older ones are dropped when nobody reads them).
_MAX_EVENTS = 1000


class LiveSession:
    """A live stream of one Avatar: idle/listening motion, answers, barge-in, on one clock.

    Args:
        avatar: the :class:`~talkinghead.Avatar` (its stages and prepared portrait are shared).
        fps: frames per second (default: the Avatar's stream fps, 25).
        sample_rate: audio rate of the stream (default 24000; 48000 suits WebRTC). One frame must
            cover a whole number of samples.
        chunk_frames: frames per chunk (small chunks: quick barge-in; large: less overhead).
        realtime: pace the chunks to the wall clock (live consumers). False: as fast as possible,
            and never idle while an answer is being prepared (tests, files).
        max_lead: how far ahead of the wall clock a paced stream may run (seconds).
        voice: voice of the answers.
        turn_timeout: seconds a turn may take to produce its whole answer before it is given up.
        vad: ``"silero"`` (bundled with faster-whisper), ``"energy"`` or a detector object.
        vad_threshold, min_speech_ms, min_silence_ms: voice-activity settings (see
            :class:`~talkinghead.streaming.vad.VoiceActivity`).
        barge_in: user speech interrupts the answer being spoken.
        on_event: called with every :data:`~talkinghead.streaming.events.SessionEvent` (from the
            thread that caused it; keep it quick).
        first_frame: global index of the first frame (to continue another stream's clock).
        memory: the conversation to continue (default: a new one with the Avatar's system prompt).
    """

    def __init__(
        self,
        avatar: Avatar,
        *,
        fps: float | None = None,
        sample_rate: int | None = None,
        chunk_frames: int = 1,
        realtime: bool = False,
        max_lead: float = 0.04,
        voice: VoiceProfile | None = None,
        turn_timeout: float | None = 30.0,
        vad: Any = "silero",
        vad_threshold: float = 0.5,
        min_speech_ms: float = 150,
        min_silence_ms: float = 500,
        barge_in: bool = True,
        on_event: Callable[[SessionEvent], None] | None = None,
        first_frame: int = 0,
        memory: Conversation | None = None,
    ) -> None:
        if int(chunk_frames) < 1:
            raise ConfigError(f"chunk_frames must be at least 1, got {chunk_frames}")
        if turn_timeout is not None and turn_timeout <= 0:
            raise ConfigError(f"turn_timeout must be positive (or None), got {turn_timeout}")
        self.avatar = avatar
        self.clock = StreamClock(fps if fps is not None else avatar.stream_fps, sample_rate or STREAM_SAMPLE_RATE)
        self.chunk_frames = int(chunk_frames)
        self.realtime = bool(realtime)
        self.max_lead = max(0.0, float(max_lead))
        self.voice = voice
        self.turn_timeout = turn_timeout
        self.barge_in = barge_in
        self.on_event = on_event
        self.conversation = memory or Conversation(avatar.conversation.system_prompt, avatar.conversation.max_exchanges)
        self._vad_spec = vad
        self._vad_options = {"threshold": vad_threshold, "min_speech_ms": min_speech_ms, "min_silence_ms": min_silence_ms}
        self._vad: VoiceActivity | None = None
        self._mic: StreamResampler | None = None
        import scipy.signal  # noqa: F401  (resampling needs it; importing it takes seconds, so not on the first frame)

        animator = avatar._use(avatar.animator)
        enhancer = avatar._use(avatar.enhancer) if avatar.enhancer is not None else None
        self._stream = open_animator_stream(animator, avatar._prepared(), clock=self.clock, first_frame=first_frame)
        self.engine = StreamEngine(self._stream, self.clock, enhancer=enhancer)
        self._lock = threading.RLock()
        self._ids = itertools.count(1)
        self._turn: Turn | None = None  # the turn whose speech is being prepared or played
        self._turns: dict[int, Turn] = {}  # recent turns by id (their last chunks come after they end)
        self._external: tuple[Turn, Segment, StreamResampler] | None = None
        self._events: queue.Queue[SessionEvent] = queue.Queue()
        self._user_speaking = False
        self._barge: list[Turn] = []  # interrupted turns waiting for their first idle frame
        self._t_start: float | None = None
        self._f_start = first_frame
        self._render_seen = 0.0
        self._heard: str | None = None  # the user's words, for the listening face (applied by the producer)
        self._closed = False

    # -- properties ----------------------------------------------------------------------------
    @property
    def fps(self):
        """Frames per second (a Fraction)."""
        return self.clock.fps

    @property
    def sample_rate(self) -> int:
        return self.clock.sample_rate

    @property
    def next_frame(self) -> int:
        """Global index of the next frame the stream emits."""
        return self.engine.next_frame

    @property
    def current_turn(self) -> Turn | None:
        """The turn being prepared or spoken, if any."""
        return self._turn

    @property
    def speaking(self) -> bool:
        """Whether speech is playing or queued."""
        return self.engine.has_speech()

    # -- turns from text and audio -------------------------------------------------------------
    def ask(
        self,
        question: str | AudioLike,
        *,
        voice: VoiceProfile | None = None,
        language: str | None = None,
        text_only: bool = False,
    ) -> Turn:
        """Answer ``question`` (text, or speech to transcribe) through the LLM; interrupts the current turn.

        Returns at once with the :class:`~.turns.Turn`; its speech appears in the chunk stream
        sentence by sentence as the LLM writes it. A string naming an audio file (``"q.wav"``) is
        read as speech unless ``text_only`` — which a server must pass for text from its clients.
        """
        if self.avatar.llm is None:
            raise ConfigError("ask() needs an llm stage; create the Avatar with llm='openai' (or another LLM backend)")
        if isinstance(question, str) and (text_only or not _is_audio_path(question)):
            from ..avatar import check_text

            text = check_text(question)
            return self._start("text", self._work_ask, text, text=text, voice=voice)
        if self.avatar.asr is None:
            raise ConfigError("asking with audio needs an asr stage; create the Avatar with asr='faster-whisper'")
        audio = load_audio(question)
        return self._start("audio", self._work_ask, None, audio=audio, voice=voice, language=language)

    def say(self, text: str, *, voice: VoiceProfile | None = None, interrupt: bool = True) -> Turn:
        """Speak ``text`` as it is (sentence by sentence), without the LLM."""
        from ..avatar import check_text

        text = check_text(text)
        if self.avatar.tts is None:
            raise ConfigError("this Avatar has no tts stage; pass tts='piper' (or another TTS backend)")
        return self._start("say", self._work_say, None, text=text, voice=voice, interrupt=interrupt)

    def speak(self, audio: AudioLike, *, text: str | None = None, interrupt: bool = True) -> Turn:
        """Speak the given audio (any rate; resampled to the stream's), with an optional caption."""
        audio = load_audio(audio)
        return self._start("speak", self._work_speak, None, audio=audio, text=text, interrupt=interrupt)

    def _start(self, source: str, work: Callable[..., None], question: str | None, *, interrupt: bool = True, **kw: Any) -> Turn:
        self._check_open()
        with self._lock:
            if interrupt:
                self._interrupt_locked("interrupted")
            turn = self._new_turn(source, question, self.turn_timeout)
            turn.metrics.cold = not self._warm(source)
        self._emit(TurnStarted(turn.id, source, self.next_frame))
        if question:
            self._emit(Caption("user", question, turn.id, self.next_frame))
            self._heard = question
        threading.Thread(target=self._run, args=(turn, work, kw), name=f"talkinghead-turn-{turn.id}", daemon=True).start()
        return turn

    def _new_turn(self, source: str, question: str | None, deadline: float | None) -> Turn:
        turn = Turn(next(self._ids), source, question, deadline=deadline)
        turn.metrics.samples_per_frame = self.clock.samples_per_frame
        turn.metrics.fps = float(self.clock.fps)
        self._turn = turn
        self._turns[turn.id] = turn
        for old in [k for k in self._turns if k <= turn.id - 16]:
            del self._turns[old]
        return turn

    def _warm(self, source: str) -> bool:
        av = self.avatar
        stages = {"text": (av.llm, av.tts), "audio": (av.asr, av.llm, av.tts), "say": (av.tts,)}.get(source, ())
        return all(b is None or av.cache.is_loaded(b) for b in stages)

    def _run(self, turn: Turn, work: Callable[..., None], kw: dict[str, Any]) -> None:
        try:
            work(turn, **kw)
        except TurnCancelled as exc:
            if str(exc) == "deadline":
                self._deadline(turn)
            return
        except NothingUnderstoodError as exc:
            self._end_turn(turn, "nothing_understood", error=str(exc), exception=exc)
            return
        except Exception as exc:  # a failed stage ends the turn, never the stream
            log.warning("turn %d failed: %s", turn.id, exc, exc_info=not isinstance(exc, TalkingHeadError))
            self.engine.clear(turn.id)
            self._end_turn(turn, "error", error=str(exc), exception=exc)
            return
        with self._lock:
            turn.all_queued = True
            if turn.done:
                return
            finished = all(s.finished for s in turn.segments)
        if finished:
            self._end_turn(turn, "done")
        self.engine.notify()

    # -- the work of a turn (on its own thread) ------------------------------------------------
    def _work_ask(self, turn: Turn, *, text: str | None = None, audio: Audio | None = None,
                  voice: VoiceProfile | None = None, language: str | None = None) -> None:
        av = self.avatar
        if audio is not None:
            t0 = time.perf_counter()
            transcript = av._use(av.asr).transcribe(audio, language=language)
            turn.metrics.asr_s = time.perf_counter() - t0
            turn.check()
            text = " ".join(transcript.text.split())
            words = len(text.split())
            if words < av.min_words:
                heard = f"heard {words} word(s) ({text!r})" if words else "heard no speech"
                raise NothingUnderstoodError(f"nothing was understood: {heard}; at least {av.min_words} are needed")
            turn.question = text
            self._emit(Caption("user", text, turn.id, self.next_frame))
            self._heard = text
        assert text is not None
        messages = self.conversation.messages(text)
        llm = av._use(av.llm)
        sentences = answer_sentences(llm, messages, max_chars=av.max_answer_chars, turn=turn)
        spoke = False
        for sentence in sentences:
            self._speak_text(turn, sentence, voice)
            spoke = True
        if not spoke:
            raise StageError("llm", llm.name, "returned an empty answer; try again or rephrase the question")

    def _work_say(self, turn: Turn, *, text: str, voice: VoiceProfile | None = None) -> None:
        self._speak_text(turn, text, voice)

    def _work_speak(self, turn: Turn, *, audio: Audio, text: str | None = None) -> None:
        seg = self._open(turn, text)
        if audio.phonemes:  # keep the timings: resample the whole (their times are in seconds)
            turn.check()
            self._append(turn, seg, audio.resample(self.clock.sample_rate))
            self.engine.end_segment(seg)
            return
        resampler = StreamResampler(audio.sample_rate, self.clock.sample_rate)
        step = max(1, int(_SPEAK_PIECE_S * audio.sample_rate))
        for i in range(0, len(audio.samples), step):
            turn.check()
            self._append(turn, seg, resampler.push(audio.samples[i : i + step]))
        self._append(turn, seg, resampler.flush())
        self.engine.end_segment(seg)

    def _speak_text(self, turn: Turn, text: str, voice: VoiceProfile | None) -> None:
        """Synthesise ``text`` sentence by sentence into the stream."""
        from ..avatar import _check_voice_reads

        av = self.avatar
        tts = av._use(av.tts)
        voice = voice or self.voice
        _check_voice_reads(tts, text, voice)  # text the voice cannot read fails the turn with a clear error
        t0 = time.perf_counter()
        for spoken in stream_speech(tts, text, voice=voice):
            turn.check()
            if turn.metrics.tts_first_s is None:
                turn.metrics.tts_first_s = time.perf_counter() - t0
            audio = spoken.audio.resample(self.clock.sample_rate)
            if not audio.text:  # the animator may read it (emotion="auto")
                audio = replace(audio, text=spoken.text)
            with self._lock:
                turn.check()
                seg = self._open(turn, spoken.text)
                self._append(turn, seg, audio)
                self.engine.end_segment(seg)

    def _open(self, turn: Turn, text: str | None) -> Segment:
        seg = self.engine.open_segment(text=text, turn=turn.id, on_start=self._seg_started, on_finish=self._seg_finished)
        with self._lock:
            turn.segments.append(seg)
        return seg

    def _append(self, turn: Turn, seg: Segment, samples: np.ndarray | Audio) -> None:
        audio = samples if isinstance(samples, Audio) else Audio(samples, self.clock.sample_rate)
        if not len(audio.samples):
            return
        if turn.metrics.first_audio_s is None:
            turn.metrics.first_audio_s = time.perf_counter() - turn.started
        self.engine.append(seg, audio)

    # -- speech pushed by the app (voice-agent frameworks) -------------------------------------
    def push_speech(self, samples: np.ndarray | Audio, sample_rate: int | None = None, *, text: str | None = None) -> None:
        """Add a piece of speech the app synthesised (PCM at any rate, float or int16).

        Pieces join into one segment until :meth:`end_speech`; the stream animates them as they
        arrive. ``text`` (the caption) is taken from the first piece of a segment.
        """
        self._check_open()
        if isinstance(samples, Audio):
            samples, sample_rate = samples.samples, samples.sample_rate
        if sample_rate is None:
            raise ConfigError("push_speech needs the sample_rate of the samples")
        x = _as_float(samples)
        with self._lock:
            ext = self._external
            if ext is None or ext[2].in_rate != int(sample_rate):
                if ext is not None:
                    self._close_external()
                turn = self._turn
                if turn is None or turn.done or turn.source != "external" or turn.all_queued:
                    turn = self._new_turn("external", None, None)
                    self._emit(TurnStarted(turn.id, "external", self.next_frame))
                seg = self._open(turn, text)
                ext = self._external = (turn, seg, StreamResampler(int(sample_rate), self.clock.sample_rate))
            turn, seg, resampler = ext
            self._append(turn, seg, resampler.push(x))

    def end_speech(self) -> None:
        """The pushed speech segment is complete (LiveKit's ``AudioSegmentEnd``, Pipecat's ``TTSStoppedFrame``)."""
        with self._lock:
            if self._external is None:
                return
            turn = self._external[0]
            self._close_external()
            turn.all_queued = True
            finished = all(s.finished for s in turn.segments)
        if finished:
            self._end_turn(turn, "done")

    def _close_external(self) -> None:
        turn, seg, resampler = self._external  # type: ignore[misc]
        self._append(turn, seg, resampler.flush())
        self.engine.end_segment(seg)
        self._external = None

    def clear(self) -> None:
        """Drop all speech not yet played and return to idle (an interruption; LiveKit's ``clear_buffer``)."""
        self.interrupt()

    # -- interruptions ---------------------------------------------------------------------------
    def interrupt(self) -> Turn | None:
        """Stop the current answer now: unplayed speech is dropped and not remembered; the stream idles.

        Returns the interrupted turn (None when nothing was being said or prepared).
        """
        with self._lock:
            return self._interrupt_locked("interrupted")

    def _interrupt_locked(self, status: TurnStatus) -> Turn | None:
        turn = self._turn
        self._external = None
        dropped = self.engine.clear()
        for seg in dropped:
            if seg.turn is not None and turn is not None and seg.turn != turn.id:
                log.debug("dropped segment %d of turn %d", seg.id, seg.turn)
        if turn is None or turn.done:
            return None
        turn._cancel.set()
        turn.interrupt_frame = self._playout_frame()
        self._barge.append(turn)
        self._end_turn(turn, status)
        return turn

    def _deadline(self, turn: Turn) -> None:
        with self._lock:
            if turn.done:
                return
            turn._cancel.set()
            self.engine.clear(turn.id)
            message = f"the turn took longer than turn_timeout={self.turn_timeout:g} s and was given up"
        self._end_turn(turn, "deadline", error=message)

    def _end_turn(self, turn: Turn, status: TurnStatus, *, error: str | None = None, exception: BaseException | None = None) -> None:
        with self._lock:
            if turn.done:
                return
            turn.status, turn.error, turn.exception = status, error, exception
            if self._turn is turn:
                self._turn = None
            answer = turn.answer
            if turn.source in ("text", "audio") and turn.question and answer:
                # only what the user heard: sentences cut by an interruption are forgotten
                self.conversation.add(turn.question, answer)
        self._emit(TurnEnded(turn.id, status, self.next_frame, answer=answer, error=error, metrics=turn.metrics))
        turn._future.set_result(turn)
        self.engine.notify()

    # -- segment callbacks (producer thread) ---------------------------------------------------
    def _seg_started(self, seg: Segment, frame: int) -> None:
        turn = self._find(seg.turn)
        if turn is not None and turn.metrics.first_frame_s is None:
            turn.metrics.first_frame_s = time.perf_counter() - turn.started
        if seg.text:
            self._emit(Caption("assistant", seg.text, seg.turn, frame))

    def _seg_finished(self, seg: Segment, frame: int) -> None:
        turn = self._find(seg.turn)
        if turn is None:
            return
        with self._lock:
            if seg.text:
                turn.spoken.append(seg.text)
            done = turn.all_queued and all(s.finished for s in turn.segments) and not turn.done
        if done:
            self._end_turn(turn, "done")

    def _find(self, turn_id: int | None) -> Turn | None:
        with self._lock:
            return self._turns.get(turn_id) if turn_id is not None else None

    # -- the user's microphone -----------------------------------------------------------------
    def push_user_audio(self, samples: np.ndarray | Audio, sample_rate: int | None = None) -> None:
        """Feed the user's microphone (PCM at any rate, any piece size).

        Voice activity starts a barge-in (when ``barge_in``) and the end of the utterance starts a
        turn with it (ASR → LLM → TTS). The stream shows ``"listening"`` chunks while the user speaks.
        """
        self._check_open()
        if isinstance(samples, Audio):
            samples, sample_rate = samples.samples, samples.sample_rate
        if sample_rate is None:
            raise ConfigError("push_user_audio needs the sample_rate of the samples")
        with self._lock:
            if self._vad is None:
                model = self.avatar.cache.component(("vad", self._vad_spec), lambda: make_vad(self._vad_spec)) \
                    if isinstance(self._vad_spec, str) else make_vad(self._vad_spec)
                self._vad = VoiceActivity(model, **self._vad_options)
            if self._mic is None or self._mic.in_rate != int(sample_rate):
                self._mic = StreamResampler(int(sample_rate), VAD_RATE)
            events = self._vad.push(self._mic.push(_as_float(samples)))
        for ev in events:
            if ev.kind == "start":
                self._user_speaking = True
                self._emit(UserSpeechStarted(self.next_frame))
                if self.barge_in:
                    self.interrupt()
            elif ev.audio is not None:
                self._user_speaking = False
                self._emit(UserSpeechEnded(self.next_frame, ev.audio.duration))
                if self.avatar.llm is not None and self.avatar.asr is not None:
                    self.ask(ev.audio)

    # -- the chunk stream --------------------------------------------------------------------------
    def __iter__(self) -> Iterator[AVChunk]:
        return self

    def __next__(self) -> AVChunk:
        chunk = self.next_chunk()
        if chunk is None:
            raise StopIteration
        return chunk

    def next_chunk(self) -> AVChunk | None:
        """The next chunk (None once the session is closed). Blocks while pacing or waiting for speech."""
        engine = self.engine
        while True:
            if self._closed:
                return None
            now = time.perf_counter()
            if self.realtime:
                if self._t_start is None:
                    self._t_start, self._f_start = now, engine.next_frame
                due = self._due(engine.next_frame)
                if due - self.max_lead > now:
                    engine.wait(min(due - self.max_lead - now, 0.05))
                    continue
            self._check_deadline()
            if self._heard is not None:
                self._listen_face(self._heard)
            turn = self._turn
            busy = turn is not None and not turn.all_queued and not turn.done
            kind = "listening" if self._user_speaking or busy else "idle"
            late = self.realtime and now >= self._due(engine.next_frame)
            chunk = engine.produce(self.chunk_frames, idle=self.realtime or not busy, force=late, idle_kind=kind)
            if chunk is not None:
                break
            engine.wait(0.01 if self.realtime else 0.05)
        self._account(chunk)
        return chunk

    def _listen_face(self, text: str) -> None:
        """While answering is prepared, the face reacts to the user's words (when it follows text)."""
        self._heard = None
        setter = getattr(self._stream, "set_expression", None)
        if setter is not None and getattr(self._stream, "follows_text", False):
            from ..expression import expression_from_text

            setter(expression_from_text(text, listener=True))

    def _due(self, frame: int) -> float:
        assert self._t_start is not None
        return self._t_start + float((frame - self._f_start) / self.clock.fps)

    def _playout_frame(self) -> int:
        """The frame a paced consumer is showing now (the production frame for unpaced streams)."""
        if not self.realtime or self._t_start is None:
            return self.engine.next_frame
        return min(self.engine.next_frame, self._f_start + int((time.perf_counter() - self._t_start) * self.clock.fps))

    def _check_deadline(self) -> None:
        turn = self._turn
        if turn is not None and not turn.all_queued and turn.deadline is not None and time.perf_counter() > turn.deadline:
            self._deadline(turn)

    def _account(self, chunk: AVChunk) -> None:
        render = self._last_render_delta()
        if self._barge and chunk.kind != "speech":
            for turn in self._barge:
                if turn.interrupt_frame is not None:
                    turn.metrics.barge_in_ms = max(0.0, 1000 * float((chunk.first_frame - turn.interrupt_frame) / self.clock.fps))
            self._barge.clear()
        if chunk.kind != "speech" or chunk.turn is None:
            return
        turn = self._find(chunk.turn)
        if turn is None:
            return
        m = turn.metrics
        m.frames += chunk.n_frames
        m.samples += len(chunk.samples)
        now = time.perf_counter()
        if turn.first_chunk_at is None:
            turn.first_chunk_at = now
        m.speech_wall_s = now - turn.first_chunk_at
        m.render_s += render
        if self.realtime and self._t_start is not None and now > self._due(chunk.end_frame):
            m.late_frames += chunk.n_frames

    def _last_render_delta(self) -> float:
        total = self.engine.render_seconds
        delta = total - self._render_seen
        self._render_seen = total
        return delta

    def chunks(self, *, max_frames: int | None = None) -> Iterator[AVChunk]:
        """Iterate the stream, stopping after ``max_frames`` frames (None: until closed)."""
        got = 0
        while max_frames is None or got < max_frames:
            chunk = self.next_chunk()
            if chunk is None:
                return
            got += chunk.n_frames
            yield chunk

    def __aiter__(self) -> AsyncIterator[AVChunk]:
        return self

    async def __anext__(self) -> AVChunk:
        chunk = await asyncio.to_thread(self.next_chunk)
        if chunk is None:
            raise StopAsyncIteration
        return chunk

    # -- events --------------------------------------------------------------------------------
    def _emit(self, event: SessionEvent) -> None:
        while self._events.qsize() >= _MAX_EVENTS:  # nobody reads them: keep the newest
            try:
                self._events.get_nowait()
            except queue.Empty:
                break
        self._events.put(event)
        if self.on_event is not None:
            try:
                self.on_event(event)
            except Exception:  # a failing listener must not break the stream
                log.exception("on_event callback failed for %r", event)

    def poll_events(self) -> list[SessionEvent]:
        """Every event since the last call (never blocks)."""
        out = []
        while True:
            try:
                out.append(self._events.get_nowait())
            except queue.Empty:
                return out

    def next_event(self, timeout: float | None = None) -> SessionEvent | None:
        """The next event, waiting up to ``timeout`` seconds (None when none came)."""
        try:
            return self._events.get(timeout=timeout)
        except queue.Empty:
            return None

    async def events(self) -> AsyncIterator[SessionEvent]:
        """Events as they happen, for ``async for`` (ends when the session closes)."""
        while not self._closed or not self._events.empty():
            event = await asyncio.to_thread(self.next_event, 0.1)
            if event is not None:
                yield event

    # -- lifetime --------------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise ConfigError("this live session is closed; start a new one with Avatar.live()")

    def close(self) -> None:
        """Stop the session: cancel the current turn, end the chunk stream, release per-stream state."""
        if self._closed:
            return
        with self._lock:
            self._interrupt_locked("interrupted")
            self._closed = True
        self.engine.notify()
        self._stream.close()

    def __enter__(self) -> LiveSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> LiveSession:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<LiveSession {float(self.clock.fps):g} fps {self.clock.sample_rate} Hz frame {self.next_frame}>"


def _as_float(samples: Any) -> np.ndarray:
    x = np.asarray(samples)
    if x.ndim == 2:  # (frames, channels) or (channels, frames): average to mono
        x = x.mean(axis=1 if x.shape[0] > x.shape[1] else 0)
    if np.issubdtype(x.dtype, np.integer):
        x = x.astype(np.float32) / float(np.iinfo(x.dtype).max + 1)
    elif not np.issubdtype(x.dtype, np.floating):
        raise AudioError(f"audio samples must be numbers (float or int PCM), got {x.dtype}")
    # NaN/inf (a broken upstream) become silence; overdriven samples are clipped
    return np.clip(np.nan_to_num(np.asarray(x, np.float32).reshape(-1), nan=0.0, posinf=1.0, neginf=-1.0), -1.0, 1.0)


def _is_audio_path(s: str) -> bool:
    from ..avatar import _looks_like_audio_path

    return _looks_like_audio_path(s)
