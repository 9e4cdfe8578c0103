"""The Avatar: a portrait plus a composition of stages.

``say(text)`` and ``speak(audio)`` make a video (content creation); ``ask(question)`` runs
ASR → LLM → TTS → video with memory of the previous turns (conversation).
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, Union

from . import deadline
from .cache import ModelCache, default_cache
from .conversation import DEFAULT_SYSTEM_PROMPT, Conversation
from .errors import AudioError, ConfigError, NothingUnderstoodError, StageError, TextError
from .io import AUDIO_SUFFIXES, AudioLike, ImageLike, check_speech, load_audio, load_image
from .output import check_output_path
from .plugins import get_registry, voice_suggestions
from .stages import PROTOCOLS, frame_count
from .text import UnspeakableTextError, check_scripts, clean_for_speech, cut_at_sentence, speakable_text
from .values import Audio, AVChunk, FrameChunk, Portrait, Reply, Transcript, Video, VoiceProfile

log = logging.getLogger(__name__)

StageSpec = Union[str, tuple, Any, None]
"""A stage given as a backend name, ``(name, {config})``, or a backend instance."""

Progress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``: called per chunk of work."""

#: Longest text ``say`` accepts (characters); longer scripts should be split into several videos.
MAX_TEXT_CHARS = 5000

MULTIPLE_FACES = ("largest", "refuse")

#: Default frame rate of video files (the uTalk study); streams default to 25 (see :mod:`talkinghead.streaming`).
FILE_FPS = 20.0


class Avatar:
    """A talking portrait.

    Args:
        portrait: path, bytes, RGB array, PIL image or :class:`Portrait`.
        tts, animator, enhancer, writer, asr, llm: each a backend name (``"piper"``), a
            ``(name, {config})`` pair, or a backend instance. ``animator=None`` picks ``sadtalker``
            when its weights are in the cache and ``viseme`` otherwise. ``enhancer``, ``asr`` and
            ``llm`` are optional.
        fps: frames per second (default: 20 for video files, 25 for streams; a value given here is
            used for both).
        multiple_faces: ``"largest"`` animates the largest face; ``"refuse"`` raises
            :class:`~talkinghead.errors.MultipleFacesError`.
        max_size: portraits whose long side is larger are fitted to this before animation: downscaled,
            or, when that would shrink the face below 160 px (a small face in a large photo), cropped
            around the face at full resolution (the video then shows that crop; see
            :func:`talkinghead.face.detection.frame_portrait`).
        output_dir: where videos go when no output path is given (default: a temporary folder).
        progress: ``progress(stage, done, total)`` callback.
        cache: the :class:`ModelCache` holding loaded models (default: one per process).
        system_prompt, memory, max_answer_chars: conversation settings for :meth:`ask`.
        turn_timeout: seconds one :meth:`ask` turn may spend before its answer is spoken (speech
            recognition, the LLM and the TTS, every retry of a remote server included); None for no
            limit. Rendering the video is not cut short.
    """

    def __init__(
        self,
        portrait: ImageLike,
        *,
        tts: StageSpec = "piper",
        animator: StageSpec = None,
        enhancer: StageSpec = None,
        writer: StageSpec = "mp4",
        asr: StageSpec = None,
        llm: StageSpec = None,
        fps: float | None = None,
        multiple_faces: str = "largest",
        max_size: int = 1024,
        output_dir: str | os.PathLike | None = None,
        progress: Progress | None = None,
        cache: ModelCache | None = None,
        system_prompt: str = DEFAULT_SYSTEM_PROMPT,
        memory: int = 2,
        max_answer_chars: int = 400,
        min_words: int = 2,
        turn_timeout: float | None = 60.0,
    ) -> None:
        if fps is not None and not 1 <= float(fps) <= 60:
            raise ConfigError(f"fps must be between 1 and 60, got {fps}")
        if multiple_faces not in MULTIPLE_FACES:
            raise ConfigError(f"multiple_faces must be one of {MULTIPLE_FACES}, got {multiple_faces!r}")
        from .streaming.clock import STREAM_FPS

        self.fps = float(fps) if fps is not None else FILE_FPS
        self.stream_fps = float(fps) if fps is not None else float(STREAM_FPS)
        self.multiple_faces = multiple_faces
        self.max_size = int(max_size)
        self.progress = progress
        self.cache = cache if cache is not None else default_cache()
        self.portrait = self._fit(load_image(portrait))
        self.output_dir = Path(output_dir) if output_dir is not None else None
        self.conversation = Conversation(system_prompt, memory)
        self.max_answer_chars = max_answer_chars
        self.min_words = min_words
        if turn_timeout is not None and not float(turn_timeout) > 0:
            raise ConfigError(f"turn_timeout must be a positive number of seconds or None, got {turn_timeout}")
        self.turn_timeout = None if turn_timeout is None else float(turn_timeout)
        self.tts = self._resolve("tts", tts)
        self.animator = self._resolve("animator", animator if animator is not None else _default_animator())
        self.enhancer = self._resolve("enhancer", enhancer)
        self.writer = self._resolve("writer", writer)
        self.asr = self._resolve("asr", asr)
        self.llm = self._resolve("llm", llm)

    def _fit(self, portrait: Portrait) -> Portrait:
        """Fit a large portrait to ``max_size`` without shrinking its face away (detects at full resolution)."""
        w, h = portrait.size
        if max(w, h) <= self.max_size:
            return portrait
        from .face.detection import frame_portrait

        try:
            finder = self.cache.component(("face", "mesh", "auto"), _mesh_finder)
            detect = finder.backend.detect
        except Exception as exc:  # no mesh backend here: plain downscaling, as the animator may not need one
            log.info("no face detector for framing the large portrait (%s); downscaling it whole", exc)
            detect = None
        image, crop = frame_portrait(portrait.image, self.max_size, detect)
        if crop is None:
            log.info("portrait downscaled from %dx%d to %dx%d (max_size=%d)", w, h, image.shape[1], image.shape[0],
                     self.max_size)
        return Portrait(image, source=portrait.source)

    # -- composition -------------------------------------------------------------------------
    def _resolve(self, stage: str, spec: StageSpec) -> Any:
        if spec is None:
            return None
        if isinstance(spec, str):
            return self.cache.backend(stage, spec, {})
        if isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[0], str) and isinstance(spec[1], Mapping):
            return self.cache.backend(stage, spec[0], dict(spec[1]))
        protocol = PROTOCOLS[stage]
        if not isinstance(spec, protocol):
            raise ConfigError(
                f"{stage}={spec!r} is neither a backend name, a (name, config) pair, nor an object "
                f"implementing the {protocol.__name__} protocol"
            )
        return spec

    @property
    def components(self) -> dict[str, Any]:
        """The stage backends by stage name (None where a stage is not used)."""
        return {
            "tts": self.tts,
            "animator": self.animator,
            "enhancer": self.enhancer,
            "writer": self.writer,
            "asr": self.asr,
            "llm": self.llm,
        }

    def preload(self) -> Avatar:
        """Load every stage's models and preprocess the portrait now instead of on first use."""
        for backend in self.components.values():
            if backend is not None:
                self.cache.ensure_loaded(backend)
        self._prepared()
        return self

    def _use(self, backend: Any) -> Any:
        return self.cache.ensure_loaded(backend)

    def _prepared(self) -> Any:
        animator = self._use(self.animator)
        key = (self.cache.backend_key(animator), self.portrait.key, self.multiple_faces)
        return self.cache.prepared(key, lambda: self._timed_prepare(animator))

    def _timed_prepare(self, animator: Any) -> Any:
        t0 = time.perf_counter()
        prepared = animator.prepare(self.portrait, multiple_faces=self.multiple_faces)
        log.info("prepared portrait for %r in %.2f s", animator.name, time.perf_counter() - t0)
        return prepared

    # -- content creation --------------------------------------------------------------------
    def synthesize(self, text: str, *, voice: VoiceProfile | None = None) -> Audio:
        """Speak ``text`` with the TTS stage and return the audio (no video).

        Raises:
            TextError: empty text, text over :data:`MAX_TEXT_CHARS`, or text in a writing system
                the voice cannot read (:class:`~talkinghead.text.UnspeakableTextError`, naming the
                installed backends and voices that can speak it), refused before synthesis.
        """
        text = check_text(text)
        if self.tts is None:
            raise ConfigError("this Avatar has no tts stage; pass tts='piper' (or another TTS backend)")
        tts = self._use(self.tts)
        _check_voice_reads(tts, text, voice)
        audio = tts.synthesize(text, voice=voice)
        # The spoken text travels with the audio (animators read it, e.g. emotion="auto").
        return audio if audio.text else replace(audio, text=text)

    def say(
        self,
        text: str,
        output: str | os.PathLike | None = None,
        *,
        voice: VoiceProfile | None = None,
        emotion: Any = None,
    ) -> Video:
        """Make a video of the portrait saying ``text``.

        Args:
            emotion: this video's expression, for animators that show one (``"neutral"``,
                ``"happy"``, ``"sad"``, ``"concerned"``, ``"surprised"``, ``"auto"`` or a
                :class:`~talkinghead.expression.Expression`); None keeps the animator's setting.

        Raises:
            TextError: empty text, text over :data:`MAX_TEXT_CHARS`, or text the voice cannot speak.
            OutputError: ``output`` cannot be written (checked before anything is synthesised).
        """
        path = self._output_path(output)
        self._animate_options(emotion)  # refuse a bad emotion before anything is synthesised
        audio = self.synthesize(text, voice=voice)
        return self._render(audio, path, emotion)

    def speak(self, audio: AudioLike, output: str | os.PathLike | None = None, *, emotion: Any = None) -> Video:
        """Make a video of the portrait speaking ``audio`` (path, bytes, Audio or (samples, rate)).

        ``emotion`` as for :meth:`say` (``"auto"`` needs the audio's ``text``). Silence is valid:
        the video shows the portrait with its mouth closed (a warning is logged).

        Raises:
            AudioError: missing, unreadable, empty or over-long audio, or shorter than one frame.
            OutputError: ``output`` cannot be written, or is the audio or portrait file itself.
        """
        path = self._output_path(output, audio=audio)
        self._animate_options(emotion)  # refuse a bad emotion before anything is read or written
        audio = load_audio(audio)
        try:
            check_speech(audio)
        except AudioError as exc:
            log.warning("%s: the video shows the portrait with its mouth closed", str(exc).split(";")[0])
        return self._render(audio, path, emotion)

    def _render(self, audio: Audio, path: Path, emotion: Any = None) -> Video:
        if audio.duration < 1.0 / self.fps:
            raise AudioError(
                f"the audio is {audio.duration * 1000:.0f} ms long, shorter than one video frame at "
                f"{self.fps:g} fps; give at least {1000 / self.fps:.0f} ms of speech"
            )
        return self._use(self.writer).write(self.frames(audio, emotion=emotion), audio, path, fps=self.fps)

    def frames(self, audio: Audio, *, emotion: Any = None) -> Iterator[FrameChunk]:
        """Stream the (enhanced) frames for ``audio`` without writing anything."""
        extra = self._animate_options(emotion)
        prepared = self._prepared()
        animator = self._use(self.animator)
        enhancer = self._use(self.enhancer) if self.enhancer is not None else None
        total = frame_count(audio.duration, self.fps)

        def report(done: int, _total: int = total) -> None:
            if self.progress is not None:
                self.progress("animate", done, total)

        produced = 0
        # per-video enhancer state (e.g. face tracking) belongs to this call, not to the shared enhancer
        state = enhancer.new_state() if enhancer is not None and hasattr(enhancer, "new_state") else None
        for chunk in animator.animate(prepared, audio, fps=self.fps, progress=lambda d, t: report(d), **extra):
            if enhancer is not None:
                n = len(chunk)
                chunk = enhancer.enhance(chunk) if state is None else enhancer.enhance(chunk, state=state)
                if len(chunk) != n:
                    raise StageError("enhancer", enhancer.name, f"returned {len(chunk)} frames for {n}")
                if self.progress is not None:
                    self.progress("enhance", produced + n, total)
            produced += len(chunk)
            yield chunk
        if produced != total:
            raise StageError("animator", animator.name, f"produced {produced} frames, expected {total}")

    def _animate_options(self, emotion: Any) -> dict[str, Any]:
        """Per-call options for the animator (only those given, only to animators that take them)."""
        if emotion is None:
            return {}
        if "emotion" not in getattr(self.animator, "capabilities", ()):
            raise ConfigError(
                f"the {self.animator.name!r} animator does not show emotions; "
                "use animator='viseme' or leave emotion unset"
            )
        return {"emotion": emotion}

    def _output_path(self, output: str | os.PathLike | None, **inputs: Any) -> Path:
        """Where the video goes: ``output`` checked by :func:`~talkinghead.output.check_output_path`
        against the writer and the inputs (the portrait file and any input given as a path), or a
        new file in ``output_dir``."""
        if output is None:
            suffix = getattr(self.writer, "suffix", ".mp4")
            folder = self.output_dir or Path(tempfile.gettempdir()) / "talkinghead"
            folder.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(prefix=time.strftime("talkinghead-%Y%m%d-%H%M%S-"), suffix=suffix, dir=folder)
            os.close(fd)
            os.unlink(name)
            return Path(name)
        return check_output_path(output, writer=self.writer, inputs={"portrait": self.portrait.source, **inputs})

    # -- streaming ---------------------------------------------------------------------------
    def live(self, **options: Any):
        """A live session: an endless stream of A/V chunks that idles, listens and answers.

        ``options`` are those of :class:`~talkinghead.streaming.LiveSession` (``fps``,
        ``sample_rate``, ``realtime``, ``voice``, ``turn_timeout``, ``vad``, ``on_event``...).
        Many sessions may run at once on one Avatar; they share its loaded models.

        >>> with avatar.live(realtime=True) as session:      # doctest: +SKIP
        ...     session.ask("What is your name?")
        ...     for chunk in session: send(chunk)
        """
        from .streaming.session import LiveSession

        return LiveSession(self, **options)

    def stream(
        self,
        text_or_audio: Union[str, AudioLike],
        *,
        voice: VoiceProfile | None = None,
        fps: float | None = None,
        sample_rate: int | None = None,
        chunk_frames: int = 5,
        realtime: bool = False,
    ) -> Iterator[AVChunk]:
        """Say a text (or speak audio) as a stream of :class:`~talkinghead.values.AVChunk`.

        The first chunk comes as soon as the first sentence is synthesised and its first frames
        rendered; the next sentences are synthesised while earlier ones are rendered. Each chunk
        holds its frames and exactly the audio samples they cover.

        Args:
            text_or_audio: text to say, or speech (path, bytes, :class:`Audio`, (samples, rate)).
            voice: voice for text.
            fps: frames per second (default 25 for streams).
            sample_rate: audio rate of the chunks (default 24000).
            chunk_frames: frames per chunk.
            realtime: pace the chunks to the wall clock (False: as fast as possible).

        Raises:
            TextError, AudioError: unusable input (before anything is rendered).
            StageError: a stage failed while streaming.
        """
        text = audio = None
        if isinstance(text_or_audio, str) and not _looks_like_audio_path(text_or_audio):
            text = check_text(text_or_audio)
            if self.tts is None:
                raise ConfigError("this Avatar has no tts stage; pass tts='piper' (or another TTS backend)")
            _check_voice_reads(self._use(self.tts), text, voice)  # refused before anything is rendered
        else:
            audio = load_audio(text_or_audio)
            try:
                check_speech(audio)
            except AudioError as exc:  # silence is valid: the portrait with its mouth closed
                log.warning("%s: the stream shows the portrait with its mouth closed", str(exc).split(";")[0])
        options = {"fps": fps, "sample_rate": sample_rate, "chunk_frames": chunk_frames, "realtime": realtime}
        if text is not None:
            return self._turn_stream(lambda session: session.say(text, voice=voice), options)
        return self._turn_stream(lambda session: session.speak(audio), options)

    def ask_stream(
        self,
        question: Union[str, AudioLike],
        *,
        voice: VoiceProfile | None = None,
        language: str | None = None,
        text_only: bool = False,
        **options: Any,
    ) -> Iterator[AVChunk]:
        """Answer ``question`` like :meth:`ask`, as a stream of chunks instead of a file.

        ``text_only=True``: a string is always the question, never an audio file path (servers).

        The LLM's answer is spoken sentence by sentence while it is written; the exchange is
        remembered in :attr:`conversation` (only what was spoken). ``options`` as for :meth:`stream`
        (``fps``, ``sample_rate``, ``chunk_frames``, ``realtime``) plus ``on_event`` and
        ``turn_timeout`` of :meth:`live`.

        Raises:
            NothingUnderstoodError: a spoken question had too few words (before the LLM is called).
            StageError: a stage failed, or the answer took longer than ``turn_timeout``.
        """
        options.setdefault("chunk_frames", 5)
        options["memory"] = self.conversation
        return self._turn_stream(
            lambda session: session.ask(question, voice=voice, language=language, text_only=text_only), options
        )

    def _turn_stream(self, start: Callable[[Any], Any], options: dict[str, Any]) -> Iterator[AVChunk]:
        """The chunks of one turn of a private live session (idle chunks only when paced)."""
        options.setdefault("turn_timeout", None)
        realtime = bool(options.get("realtime"))
        session = self.live(**{k: v for k, v in options.items() if v is not None or k == "turn_timeout"})
        try:
            turn = start(session)
            for chunk in session:
                if chunk.kind == "speech" or realtime:
                    yield chunk
                if turn.done and not session.speaking:
                    break
            if turn.exception is not None:
                raise turn.exception
            if turn.status == "deadline":
                raise StageError("llm", getattr(self.llm, "name", "?"), turn.error or "the answer took too long")
        finally:
            session.close()

    async def astream(self, text_or_audio: Union[str, AudioLike], **options: Any) -> AsyncIterator[AVChunk]:
        """:meth:`stream` for ``async for`` (rendering runs in a worker thread, off the event loop)."""
        it = self.stream(text_or_audio, **options)
        done = object()
        try:
            while True:
                chunk = await asyncio.to_thread(next, it, done)
                if chunk is done:
                    return
                yield chunk
        finally:
            await asyncio.to_thread(it.close)

    # -- conversation ------------------------------------------------------------------------
    def ask(
        self,
        question: Union[str, AudioLike],
        output: str | os.PathLike | None = None,
        *,
        language: str | None = None,
        voice: VoiceProfile | None = None,
        text_only: bool = False,
    ) -> Reply:
        """Answer a question (text, or speech to transcribe) with a video; remembers the exchange.

        A spoken question goes through the ASR stage first. It is refused before the LLM is called
        when it is silent, when the ASR's voice-activity filter finds no speech in it, or when
        fewer than ``min_words`` words were recognised. The LLM sees the system prompt, the last
        ``memory`` exchanges and the question; its answer is cleaned of markdown, cut at a sentence
        boundary to ``max_answer_chars``, spoken by the TTS and animated. The exchange is remembered
        only when the video was made.

        A string that names an audio file (``"question.wav"``) is read as speech; a missing
        one is an :class:`AudioError`, never a question sent to the LLM. Pass ``text_only=True``
        where the string comes from an untrusted user (a server): it is then always a question,
        never a path that reads a file.

        The turn runs under :attr:`turn_timeout`: the remote stages get only the time left of it
        for each request and retry, and no stage starts once it has passed.

        Args:
            question: text, or audio (a path to an audio file, bytes, :class:`Audio`, (samples, rate)).
            output: video path (default: a new file in ``output_dir``).
            language: language of the spoken question (None lets the ASR detect it).
            voice: voice to answer with.
            text_only: a string ``question`` is always text, never read as an audio file path.

        Raises:
            NothingUnderstoodError: spoken question was silent or had fewer than ``min_words``
                words; raised before the LLM is called.
            AudioError: the question names an audio file that is missing or unreadable.
            ConfigError: no ASR (for audio) or no LLM stage.
            DeadlineError: the turn ran past :attr:`turn_timeout` before its answer was spoken.
            ServiceError: a remote stage failed (``transient`` says whether retrying may help).
        """
        if self.llm is None:
            raise ConfigError("ask() needs an llm stage; pass llm='openai' (or another LLM backend)")
        started = time.perf_counter()
        if isinstance(question, str):
            spoken = not text_only and _looks_like_audio_path(question)
        else:
            spoken = True
        path = self._output_path(output, question=question if spoken else None)
        with deadline.deadline(self.turn_timeout):
            text, answer, transcript, timings = self._answer(question, spoken, language)
            t2 = time.perf_counter()
            deadline.check("tts", self.tts.name if self.tts is not None else "-")
            audio = self.synthesize(answer, voice=voice)
            timings["tts"] = time.perf_counter() - t2
        t3 = time.perf_counter()
        video = self._render(audio, path)
        timings["video"] = time.perf_counter() - t3
        self.conversation.add(text, answer)
        timings["total"] = time.perf_counter() - started
        return Reply(question=text, answer=answer, video=video, transcript=transcript, timings=timings)

    def _answer(
        self, question: Union[str, AudioLike], spoken: bool, language: str | None
    ) -> tuple[str, str, Transcript | None, dict[str, float]]:
        """The question as text, the cleaned answer, the transcript (if spoken) and the timings."""
        timings: dict[str, float] = {}
        transcript: Transcript | None = None
        t0 = time.perf_counter()
        if not spoken:
            text = check_text(question)
        else:
            if self.asr is None:
                raise ConfigError("asking with audio needs an asr stage; pass asr='faster-whisper'")
            audio = load_audio(question.strip() if isinstance(question, str) else question)
            try:
                check_speech(audio)
            except AudioError as exc:
                raise NothingUnderstoodError(f"nothing was understood: {exc}") from exc
            asr = self._use(self.asr)
            deadline.check("asr", asr.name)
            transcript = asr.transcribe(audio, language=language)
            text = " ".join(transcript.text.split())
            n_words = len(text.split())
            timings["asr"] = time.perf_counter() - t0
            if n_words < self.min_words:
                heard = f"heard {n_words} word(s) ({text!r})" if n_words else "heard no speech"
                raise NothingUnderstoodError(
                    f"nothing was understood: {heard}; at least {self.min_words} are needed. "
                    "Speak closer to the microphone and try again."
                )
        t1 = time.perf_counter()
        llm = self._use(self.llm)
        deadline.check("llm", llm.name)
        answer = llm.complete(self.conversation.messages(text))
        answer = cut_at_sentence(clean_for_speech(answer or ""), self.max_answer_chars)
        if not answer.strip():
            raise StageError("llm", self.llm.name, "returned an empty answer; try again or rephrase the question")
        timings["llm"] = time.perf_counter() - t1
        return text, answer, transcript, timings

    def reset(self) -> None:
        """Forget the conversation so far."""
        self.conversation.reset()

    def __repr__(self) -> str:
        parts = ", ".join(f"{k}={v.name!r}" for k, v in self.components.items() if v is not None)
        w, h = self.portrait.size
        return f"<Avatar {w}×{h} {parts}, fps={self.fps:g}>"


def check_text(text: str) -> str:
    """Validate text to speak: not empty, at most :data:`MAX_TEXT_CHARS` characters."""
    if not isinstance(text, str):
        raise TextError(f"text must be a string, got {type(text).__name__}")
    stripped = speakable_text(text)
    if len(stripped) > MAX_TEXT_CHARS:
        raise TextError(
            f"the text is {len(stripped)} characters, over the {MAX_TEXT_CHARS} limit; split it into several videos"
        )
    return stripped


def _check_voice_reads(tts: Any, text: str, voice: VoiceProfile | None) -> None:
    """Refuse text the TTS voice cannot read (it declares ``scripts(voice)``), naming what can."""
    scripts = getattr(tts, "scripts", None)
    if not callable(scripts):
        return
    label = (voice.voice if voice is not None and voice.voice else None) or getattr(tts, "voice", None)
    if not label:
        names = list(tts.voices())
        label = names[0] if len(names) == 1 else ""
    who = f"the {tts.name} voice {label}".rstrip()
    try:
        check_scripts(text, scripts(voice), voice=who)
    except UnspeakableTextError as exc:
        hints = voice_suggestions(exc.scripts)
        hint = "; or ".join(hints) if hints else "choose a TTS voice for that language (`talkinghead plugins` lists the TTS backends)"
        raise UnspeakableTextError(f"{exc}. To speak it use {hint}", exc.scripts) from None


def _looks_like_audio_path(s: str) -> bool:
    """A string names an audio file when it ends in an audio extension and is an existing path or a
    single token without spaces (``"missing.wav"``); ``"what is a .wav file"`` is a question."""
    stripped = s.strip()
    if Path(stripped).suffix.lower() not in AUDIO_SUFFIXES:
        return False
    return Path(stripped).exists() or not any(ch.isspace() for ch in stripped)


def _mesh_finder() -> Any:
    from .face.landmarks import MeshLandmarks

    finder = MeshLandmarks("auto")
    finder.load()
    return finder


def _default_animator() -> str:
    """``sadtalker`` when it is installed and its weights are cached, else ``viseme``."""
    registry = get_registry()
    if "sadtalker" in registry.names("animator"):
        cls = registry.get("animator", "sadtalker").cls
        available = getattr(cls, "weights_available", None)
        try:
            if available is not None and available():
                log.info("animator: sadtalker (its weights are in the cache)")
                return "sadtalker"
        except Exception as exc:  # a broken check must not stop the default path
            log.debug("sadtalker weights check failed: %s", exc)
        log.info("animator: viseme (sadtalker weights not in the cache; `talkinghead weights download sadtalker`)")
    else:
        log.info("animator: viseme (the embedded default)")
    return "viseme"
