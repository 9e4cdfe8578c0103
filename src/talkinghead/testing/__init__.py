"""Fakes of every stage, for talkinghead's own tests and for plug-in authors' tests.

They are real backends (they satisfy the stage protocols) that need no model: deterministic,
fast, and inspectable (``FakeLLM.requests``, ``MemoryWriter.frames``...).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..errors import TextError
from ..face.selection import select_face
from ..stages import BackendBase, frame_count
from ..values import Audio, ChatMessage, Face, FrameChunk, PhonemeTiming, Portrait, Transcript, Video, VoiceProfile

__all__ = ["FakesPlugin", "FakeTTS", "FakeASR", "FakeLLM", "FakeAnimator", "FakeEnhancer", "MemoryWriter", "tone_speech"]


def tone_speech(words: Sequence[str], *, sample_rate: int = 16000, word_s: float = 0.3, gap_s: float = 0.1) -> Audio:
    """Speech-like audio: one amplitude-modulated tone burst per word, silences between words."""
    chunks, phonemes, t = [], [], 0.0
    rng = np.random.default_rng(0)
    for i, word in enumerate(words):
        n = int(word_s * sample_rate)
        tt = np.arange(n) / sample_rate
        env = np.sin(np.pi * tt / word_s) ** 0.5
        burst = 0.3 * env * np.sin(2 * np.pi * (140 + 20 * i) * tt) + 0.01 * rng.standard_normal(n)
        chunks.append(burst.astype(np.float32))
        phonemes.append(PhonemeTiming("a", t, t + word_s))
        t += word_s
        gap = np.zeros(int(gap_s * sample_rate), np.float32)
        chunks.append(gap)
        phonemes.append(PhonemeTiming(" ", t, t + gap_s))
        t += gap_s
    return Audio(np.concatenate(chunks), sample_rate, phonemes=tuple(phonemes))


class FakeTTS(BackendBase):
    """Tone bursts, one per word, with phoneme timings. Records what it was asked to say."""

    stage: ClassVar[str] = "tts"
    name: ClassVar[str] = "fake"
    capabilities: ClassVar[frozenset[str]] = frozenset({"phonemes", "offline"})

    def __init__(self, *, sample_rate: int = 16000) -> None:
        self.sample_rate = sample_rate
        self.texts: list[str] = []

    def synthesize(self, text: str, *, voice: VoiceProfile | None = None) -> Audio:
        words = text.split()
        if not words:
            raise TextError("the text is empty")
        self.texts.append(text)
        return tone_speech(words, sample_rate=self.sample_rate)

    def voices(self) -> Sequence[str]:
        return ["tone"]


class FakeASR(BackendBase):
    """Returns enqueued transcripts in order (or ``default``)."""

    stage: ClassVar[str] = "asr"
    name: ClassVar[str] = "fake"
    capabilities: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, *, default: str = "hello there") -> None:
        self.default = default
        self._queue: deque[str] = deque()
        self.calls: list[Audio] = []

    def enqueue(self, *texts: str) -> None:
        self._queue.extend(texts)

    def transcribe(self, audio: Audio, *, language: str | None = None) -> Transcript:
        self.calls.append(audio)
        text = self._queue.popleft() if self._queue else self.default
        return Transcript(text=text, language=language or "en", duration=audio.duration)


class FakeLLM(BackendBase):
    """Answers with enqueued replies (or an echo) and records every request in ``requests``."""

    stage: ClassVar[str] = "llm"
    name: ClassVar[str] = "fake"
    capabilities: ClassVar[frozenset[str]] = frozenset({"stream"})

    def __init__(self) -> None:
        self._queue: deque[str] = deque()
        self.requests: list[list[ChatMessage]] = []

    def enqueue(self, *answers: str) -> None:
        self._queue.extend(answers)

    def complete(self, messages: Sequence[ChatMessage]) -> str:
        self.requests.append(list(messages))
        if self._queue:
            return self._queue.popleft()
        return f"You said: {messages[-1].content}"

    def stream(self, messages: Sequence[ChatMessage]) -> Iterator[str]:
        answer = self.complete(messages)
        for word in answer.split(" "):
            yield word + " "


class FakeAnimator(BackendBase):
    """Draws the portrait with a dark bar over the mouth whose height follows the audio level.

    Uses a face box at the centre of the image (or ``faces`` given at construction); ``delay``
    seconds of sleep before each chunk make a render slow enough to interrupt in tests.
    """

    stage: ClassVar[str] = "animator"
    name: ClassVar[str] = "fake"
    capabilities: ClassVar[frozenset[str]] = frozenset({"offline"})

    def __init__(
        self, *, chunk_size: int = 8, faces: Sequence[Face] | None = None, size: int | None = None, delay: float = 0.0
    ) -> None:
        self.chunk_size = chunk_size
        self.delay = delay
        self.faces = faces
        self.size = size
        self.prepare_calls = 0

    def prepare(self, portrait: Portrait, *, multiple_faces: str = "largest") -> Any:
        self.prepare_calls += 1
        w, h = portrait.size
        faces = self.faces if self.faces is not None else [Face((w * 0.3, h * 0.25, w * 0.7, h * 0.75))]
        face = select_face(faces, multiple_faces=multiple_faces)
        image = portrait.image
        if self.size:
            import cv2

            image = cv2.resize(image, (self.size, self.size))
        return {"image": image, "face": face, "scale": image.shape[1] / w}

    def animate(self, prepared: Any, audio: Audio, *, fps: float, progress=None) -> Iterator[FrameChunk]:
        n = frame_count(audio.duration, fps)
        env = audio.rms_envelope(fps, n)
        env = env / (env.max() + 1e-9)
        image, face, s = prepared["image"], prepared["face"], prepared["scale"]
        x1, y1, x2, y2 = (int(v * s) for v in face.box)
        cy = int(y1 + 0.8 * (y2 - y1))
        for start in range(0, n, self.chunk_size):
            if self.delay:
                time.sleep(self.delay)
            stop = min(n, start + self.chunk_size)
            frames = np.repeat(image[None], stop - start, axis=0)
            for k, i in enumerate(range(start, stop)):
                half = int(env[i] * 0.08 * (y2 - y1))
                frames[k, cy - half : cy + half + 1, x1 + (x2 - x1) // 3 : x2 - (x2 - x1) // 3] = 20
            if progress is not None:
                progress(stop, n)
            yield FrameChunk(frames, start)


class FakeEnhancer(BackendBase):
    """Brightens frames by a constant; counts the frames it saw."""

    stage: ClassVar[str] = "enhancer"
    name: ClassVar[str] = "fake"
    capabilities: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, *, add: int = 10) -> None:
        self.add = add
        self.frames_seen = 0

    def enhance(self, chunk: FrameChunk) -> FrameChunk:
        self.frames_seen += len(chunk)
        out = np.clip(chunk.frames.astype(np.int16) + self.add, 0, 255).astype(np.uint8)
        return FrameChunk(out, chunk.start)


class MemoryWriter(BackendBase):
    """Keeps frames and audio in memory instead of writing a file (``path`` is only recorded).

    ``frames`` / ``audio`` hold the last video; ``outputs`` maps each path written to its frames
    (concurrent calls with different paths each keep their own).
    """

    stage: ClassVar[str] = "writer"
    name: ClassVar[str] = "memory"
    capabilities: ClassVar[frozenset[str]] = frozenset()
    suffix: ClassVar[str] = ".mp4"

    def __init__(self) -> None:
        self.frames: np.ndarray | None = None
        self.audio: Audio | None = None
        self.outputs: dict[str, np.ndarray] = {}

    def write(self, frames: Iterable[FrameChunk], audio: Audio | None, path: Path, *, fps: float) -> Video:
        chunks = [c.frames for c in frames]
        video = np.concatenate(chunks) if chunks else np.zeros((0, 1, 1, 3), np.uint8)
        self.outputs[str(path)] = video
        self.frames = video
        self.audio = audio
        n, h, w = video.shape[:3]
        return Video(Path(path), fps, w, h, n, audio.duration if audio else 0.0, audio is not None)


class FakesPlugin:
    """A plug-in registering every fake backend under the name ``fake`` (``memory`` for the writer).

    >>> from talkinghead.plugins import add_plugin
    >>> add_plugin(FakesPlugin())        # doctest: +SKIP
    """

    from ..hookspecs import hookimpl as _hookimpl

    @_hookimpl
    def register_backends(self, register) -> None:
        for cls in (FakeTTS, FakeASR, FakeLLM, FakeAnimator, FakeEnhancer, MemoryWriter):
            register(cls)
