"""Shared by the server tests: encoded test files, an app on the fake backends, job polling, and a
gated animator whose frames wait for the test (for cancel, queue and concurrency tests)."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from typing import Any, ClassVar, Literal

import numpy as np

from talkinghead.errors import ConfigError
from talkinghead.hookspecs import hookimpl
from talkinghead.stages import BackendBase, frame_count
from talkinghead.testing import FakeAnimator, tone_speech
from talkinghead.values import Audio, FrameChunk, Portrait


def png_bytes(image: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def wav_bytes(audio: Audio) -> bytes:
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, audio.samples, audio.sample_rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def webm_opus_bytes(audio: Audio) -> bytes:
    """What a browser's MediaRecorder uploads: Opus in WebM (no duration in the header)."""
    import av

    audio = audio.resample(48000)
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="webm") as out:
        stream = out.add_stream("libopus", rate=48000)
        stream.layout = "mono"
        samples = (np.clip(audio.samples, -1, 1) * 32767).astype(np.int16)
        for start in range(0, len(samples), 960):
            block = samples[start : start + 960]
            frame = av.AudioFrame.from_ndarray(block[None, :], format="s16", layout="mono")
            frame.sample_rate = 48000
            frame.pts = start
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


def speech(words: int = 4) -> Audio:
    return tone_speech([f"w{i}" for i in range(words)])


def fake_settings(tmp_path, **overrides: Any):
    """Server settings on the fake backends (tts/animator/llm/asr 'fake') and the real mp4 writer."""
    from talkinghead.server import ServerSettings

    base = dict(
        data_dir=tmp_path / "data",
        stages={"tts": "fake", "animator": "fake", "asr": "fake", "llm": "fake", "writer": "mp4"},
        backend_options={"writer": {"mp4": {"preset": "ultrafast"}}},
        client_options={"fake": ("chunk_size",), "gated": (), "mood": ("emotion",)},
        rate_limit=6000.0,
        rate_burst=1000,
    )
    base.update(overrides)
    return ServerSettings(**base)


def wait_job(client, jid: str, timeout: float = 60.0) -> dict:
    """Poll ``GET /v1/videos/{jid}`` until the job is finished (bounded)."""
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/v1/videos/{jid}").json()
        if job["status"] not in ("queued", "in_progress"):
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {jid} still {job['status']} after {timeout} s: {job}")
        time.sleep(0.05)


class Gate:
    """Counts animators running at once; frames wait until ``open`` (or the timeout)."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.lock = threading.Lock()
        self.running = 0
        self.peak = 0
        self.started = threading.Semaphore(0)

    def reset(self) -> None:
        self.event.clear()
        self.running = self.peak = 0
        self.started = threading.Semaphore(0)


GATE = Gate()


class GatedAnimator(BackendBase):
    """Like the fake animator, but each chunk waits for ``GATE.event`` (at most 30 s)."""

    stage: ClassVar[str] = "animator"
    name: ClassVar[str] = "gated"

    def prepare(self, portrait: Portrait, *, multiple_faces: str = "largest") -> Any:
        return portrait.image

    def animate(self, prepared: Any, audio: Audio, *, fps: float, progress=None) -> Iterator[FrameChunk]:
        n = frame_count(audio.duration, fps)
        with GATE.lock:
            GATE.running += 1
            GATE.peak = max(GATE.peak, GATE.running)
        GATE.started.release()
        try:
            for start in range(0, n, 4):
                GATE.event.wait(30)
                stop = min(n, start + 4)
                if progress is not None:
                    progress(stop, n)
                yield FrameChunk(np.repeat(prepared[None], stop - start, axis=0), start)
        finally:
            with GATE.lock:
                GATE.running -= 1


class MoodAnimator(FakeAnimator):
    """The fake animator with an ``emotion`` option (as expressive animators have)."""

    name: ClassVar[str] = "mood"

    def __init__(self, *, emotion: Literal["neutral", "happy", "sad"] = "neutral", chunk_size: int = 8) -> None:
        if emotion not in ("neutral", "happy", "sad"):
            raise ConfigError(f"emotion must be neutral, happy or sad, got {emotion!r}")
        super().__init__(chunk_size=chunk_size)
        self.emotion = emotion


class GatedPlugin:
    @hookimpl
    def register_backends(self, register) -> None:
        register(GatedAnimator)
        register(MoodAnimator)


def mouth_box(image_path, margin: int = 12) -> tuple[int, int, int, int]:
    """(x1, y1, x2, y2) around the lips of the portrait, from the viseme animator's face mesh."""
    from talkinghead.backends.viseme import VisemeAnimator
    from talkinghead.face.mesh import LIPS_OUTER_LOWER, LIPS_OUTER_UPPER
    from talkinghead.io import load_image

    animator = VisemeAnimator()
    try:
        prepared = animator.prepare(load_image(image_path))
    finally:
        animator.close()
    lips = prepared.face.landmarks[list(LIPS_OUTER_UPPER + LIPS_OUTER_LOWER)]
    x1, y1 = np.floor(lips.min(axis=0)).astype(int) - margin
    x2, y2 = np.ceil(lips.max(axis=0)).astype(int) + margin
    return int(max(x1, 0)), int(max(y1, 0)), int(x2), int(y2)
