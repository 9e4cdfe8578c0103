"""Values that flow between stages: audio, portraits, frames, videos, transcripts, replies.

All are frozen dataclasses holding numpy arrays in memory. Reading and writing files happens at the
edges (:mod:`talkinghead.io` for inputs, the Writer stage for outputs).
"""

from __future__ import annotations

import base64
import hashlib
import html
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Literal

import numpy as np

from .errors import AudioError

__all__ = [
    "PhonemeTiming",
    "WordTiming",
    "Audio",
    "Face",
    "Portrait",
    "FrameChunk",
    "AVChunk",
    "SpokenSentence",
    "Video",
    "TranscriptWord",
    "Transcript",
    "ChatMessage",
    "VoiceProfile",
    "Reply",
]


@dataclass(frozen=True)
class PhonemeTiming:
    """One phoneme of synthesised speech: IPA symbol(s) and its span in seconds."""

    phoneme: str
    start: float
    end: float


@dataclass(frozen=True)
class WordTiming:
    """One word of synthesised or recognised speech and its span in seconds."""

    word: str
    start: float
    end: float


@dataclass(frozen=True, eq=False)
class Audio:
    """Mono float32 speech samples in [-1, 1] with their sample rate.

    Args:
        samples: 1-D float32 array.
        sample_rate: samples per second.
        phonemes: per-phoneme timings when the TTS provides them.
        words: per-word timings when known.
        text: the words spoken, when known (the Avatar fills it in from the text it synthesised;
            animators read it, e.g. for an expression that follows the text's sentiment).
    """

    samples: np.ndarray
    sample_rate: int
    phonemes: tuple[PhonemeTiming, ...] = ()
    words: tuple[WordTiming, ...] = ()
    text: str = ""

    def __post_init__(self) -> None:
        samples = np.asarray(self.samples)
        if samples.ndim != 1:
            raise AudioError(f"audio must be mono (1-D samples), got shape {samples.shape}")
        if samples.dtype != np.float32:
            samples = samples.astype(np.float32)
        object.__setattr__(self, "samples", samples)
        if int(self.sample_rate) <= 0:
            raise AudioError(f"sample rate must be positive, got {self.sample_rate}")
        object.__setattr__(self, "sample_rate", int(self.sample_rate))

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return len(self.samples) / self.sample_rate

    @classmethod
    def concatenate(cls, parts: Sequence[Audio]) -> Audio:
        """Join pieces of speech (same sample rate) end to end; their phoneme and word timings are
        shifted onto the joined clock, so they stay continuous, and their texts are joined."""
        parts = list(parts)
        if not parts:
            raise AudioError("nothing to concatenate: no audio pieces")
        if len(parts) == 1:
            return parts[0]
        rate = parts[0].sample_rate
        if any(p.sample_rate != rate for p in parts):
            raise AudioError(f"cannot join audio of different sample rates: {sorted({p.sample_rate for p in parts})}")
        phonemes: list[PhonemeTiming] = []
        words: list[WordTiming] = []
        offset = 0
        for p in parts:
            t = offset / rate
            phonemes.extend(PhonemeTiming(x.phoneme, x.start + t, x.end + t) for x in p.phonemes)
            words.extend(WordTiming(x.word, x.start + t, x.end + t) for x in p.words)
            offset += len(p.samples)
        samples = np.concatenate([p.samples for p in parts])
        text = " ".join(p.text for p in parts if p.text)
        return cls(samples, rate, phonemes=tuple(phonemes), words=tuple(words), text=text)

    def resample(self, sample_rate: int) -> Audio:
        """Return this audio at another sample rate (polyphase filter; timings unchanged)."""
        if sample_rate == self.sample_rate:
            return self
        from math import gcd

        from scipy.signal import resample_poly

        g = gcd(sample_rate, self.sample_rate)
        out = resample_poly(self.samples, sample_rate // g, self.sample_rate // g)
        return replace(self, samples=out.astype(np.float32), sample_rate=sample_rate)

    def rms_envelope(self, fps: float, n_frames: int | None = None) -> np.ndarray:
        """Root-mean-square level per video frame (window = one frame period)."""
        hop = self.sample_rate / fps
        n = n_frames if n_frames is not None else max(1, int(round(self.duration * fps)))
        out = np.zeros(n, dtype=np.float32)
        first = 0
        if float(hop).is_integer():  # whole frames at once (a stream's frames cover whole samples)
            h = int(hop)
            first = min(n, len(self.samples) // h)
            if first:
                frames = self.samples[: first * h].astype(np.float64).reshape(first, h)
                out[:first] = np.sqrt(np.mean(frames**2, axis=1))
        for i in range(first, n):
            a, b = int(round(i * hop)), int(round((i + 1) * hop))
            seg = self.samples[a:b]
            if seg.size:
                out[i] = float(np.sqrt(np.mean(seg.astype(np.float64) ** 2)))
        return out


@dataclass(frozen=True)
class Face:
    """A detected face: box (x1, y1, x2, y2) in pixels, detector score, optional landmarks (N, 2)."""

    box: tuple[float, float, float, float]
    score: float = 1.0
    landmarks: np.ndarray | None = field(default=None, compare=False)

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]

    @property
    def area(self) -> float:
        return max(0.0, self.width) * max(0.0, self.height)


@dataclass(frozen=True, eq=False)
class Portrait:
    """An RGB uint8 image (H, W, 3) of a person, with where it came from.

    ``key`` is a content hash used to cache per-portrait preprocessing.
    """

    image: np.ndarray
    source: str | None = None
    key: str = ""

    def __post_init__(self) -> None:
        image = np.ascontiguousarray(self.image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"portrait must be an RGB uint8 array (H, W, 3), got {image.dtype} {image.shape}")
        object.__setattr__(self, "image", image)
        if not self.key:
            digest = hashlib.sha1(image.tobytes())
            digest.update(repr(image.shape).encode())
            object.__setattr__(self, "key", digest.hexdigest())

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return self.image.shape[1], self.image.shape[0]


@dataclass(frozen=True, eq=False)
class FrameChunk:
    """Consecutive video frames: RGB uint8 array (N, H, W, 3) starting at frame ``start``."""

    frames: np.ndarray
    start: int = 0

    def __post_init__(self) -> None:
        f = self.frames
        if f.ndim != 4 or f.shape[3] != 3 or f.dtype != np.uint8:
            raise ValueError(f"frames must be uint8 (N, H, W, 3), got {f.dtype} {f.shape}")

    def __len__(self) -> int:
        return self.frames.shape[0]

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of each frame."""
        return self.frames.shape[2], self.frames.shape[1]


#: What an :class:`AVChunk` shows: the avatar speaking, idle, or listening to the user.
ChunkKind = Literal["speech", "idle", "listening"]


@dataclass(frozen=True, eq=False)
class AVChunk:
    """A piece of a live stream: video frames and exactly the audio samples they cover.

    Frame ``i`` of the stream covers samples ``[i * spf, (i + 1) * spf)`` where
    ``spf = sample_rate / fps`` is a whole number, so audio and video share one clock: every
    timestamp is derived from :attr:`first_frame` (never from the wall clock) and the two can never
    drift apart.

    Args:
        frames: RGB uint8 frames (N, H, W, 3).
        samples: float32 mono samples in [-1, 1], exactly ``N * samples_per_frame`` of them.
        sample_rate: samples per second.
        fps: frames per second (a :class:`~fractions.Fraction`; ints and floats are converted).
        first_frame: index of the first frame in the stream.
        kind: ``"speech"``, ``"idle"`` or ``"listening"``.
        text: the caption being spoken, when known.
        segment_end: the last chunk of a speech segment (one sentence, or one pushed segment of
            external speech); LiveKit's ``AudioSegmentEnd`` and Pipecat's ``TTSStoppedFrame``.
        turn: the conversation turn the speech answers (None outside conversations).
    """

    frames: np.ndarray
    samples: np.ndarray
    sample_rate: int
    fps: Fraction
    first_frame: int
    kind: ChunkKind = "speech"
    text: str | None = None
    segment_end: bool = False
    turn: int | None = None

    def __post_init__(self) -> None:
        f = self.frames
        if f.ndim != 4 or f.shape[3] != 3 or f.dtype != np.uint8:
            raise ValueError(f"frames must be uint8 (N, H, W, 3), got {f.dtype} {f.shape}")
        fps = Fraction(self.fps).limit_denominator(1001) if not isinstance(self.fps, Fraction) else self.fps
        object.__setattr__(self, "fps", fps)
        spf = self.sample_rate / fps
        if fps <= 0 or spf.denominator != 1:
            raise ValueError(f"{self.sample_rate} Hz at {fps} fps is not a whole number of samples per frame")
        samples = np.asarray(self.samples, dtype=np.float32)
        if samples.ndim != 1 or samples.shape[0] != f.shape[0] * spf.numerator:
            raise ValueError(
                f"{f.shape[0]} frames need exactly {f.shape[0] * spf.numerator} samples, got shape {samples.shape}"
            )
        object.__setattr__(self, "samples", samples)
        if self.kind not in ("speech", "idle", "listening"):
            raise ValueError(f"kind must be 'speech', 'idle' or 'listening', got {self.kind!r}")

    def __len__(self) -> int:
        return self.frames.shape[0]

    @property
    def n_frames(self) -> int:
        """Number of frames in the chunk."""
        return self.frames.shape[0]

    @property
    def samples_per_frame(self) -> int:
        """Audio samples covered by one frame."""
        return int(self.sample_rate / self.fps)

    @property
    def first_sample(self) -> int:
        """Index of the first audio sample in the stream."""
        return self.first_frame * self.samples_per_frame

    @property
    def end_frame(self) -> int:
        """Index of the frame after the last one of this chunk."""
        return self.first_frame + self.n_frames

    @property
    def pts(self) -> Fraction:
        """Presentation time of the first frame and sample, in seconds (exact)."""
        return self.first_frame / self.fps

    @property
    def end_pts(self) -> Fraction:
        """Presentation time just after the chunk, in seconds (exact)."""
        return self.end_frame / self.fps

    @property
    def duration(self) -> Fraction:
        """Length in seconds (exact)."""
        return self.n_frames / self.fps

    def frame_pts(self, i: int) -> Fraction:
        """Presentation time of frame ``i`` of this chunk, in seconds."""
        return (self.first_frame + i) / self.fps

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of each frame."""
        return self.frames.shape[2], self.frames.shape[1]


@dataclass(frozen=True, eq=False)
class SpokenSentence:
    """One sentence of speech from a streaming TTS: the text and its audio."""

    text: str
    audio: Audio


@dataclass(frozen=True)
class Video:
    """A rendered video file and its metadata. Displays inline in Jupyter."""

    path: Path
    fps: float
    width: int
    height: int
    n_frames: int
    audio_duration: float = 0.0
    has_audio: bool = True

    @property
    def duration(self) -> float:
        """Video duration in seconds (frames / fps)."""
        return self.n_frames / self.fps

    def _repr_html_(self) -> str:
        path = Path(self.path)
        mime = "video/webm" if path.suffix == ".webm" else "video/mp4"
        if path.exists() and path.stat().st_size <= 20 * 1024 * 1024:
            data = base64.b64encode(path.read_bytes()).decode("ascii")
            src = f"data:{mime};base64,{data}"
        else:
            src = html.escape(os.fspath(path))
        return (
            f'<video controls width="{min(self.width, 512)}" src="{src}"></video>'
            f"<div><code>{html.escape(os.fspath(path))}</code> {self.width}×{self.height}, "
            f"{self.n_frames} frames at {self.fps:g} fps</div>"
        )


@dataclass(frozen=True)
class TranscriptWord:
    word: str
    start: float
    end: float
    probability: float = 1.0


@dataclass(frozen=True)
class Transcript:
    """What speech recognition heard."""

    text: str
    language: str | None = None
    words: tuple[TranscriptWord, ...] = ()
    duration: float = 0.0


@dataclass(frozen=True)
class ChatMessage:
    """One message of a conversation."""

    role: Literal["system", "user", "assistant"]
    content: str


@dataclass(frozen=True, eq=False)
class VoiceProfile:
    """A voice to speak with: a backend voice id, and/or reference audio for cloning backends."""

    voice: str | None = None
    language: str | None = None
    reference: Audio | None = None
    reference_text: str | None = None


@dataclass(frozen=True)
class Reply:
    """One conversational turn: what was asked, what was answered, and the video of the answer."""

    question: str
    answer: str
    video: Video
    transcript: Transcript | None = None
    timings: dict[str, float] = field(default_factory=dict, compare=False)

    def _repr_html_(self) -> str:
        return (
            f"<p><b>Q:</b> {html.escape(self.question)}<br><b>A:</b> {html.escape(self.answer)}</p>"
            + self.video._repr_html_()
        )
