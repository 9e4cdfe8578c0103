"""Writer ``mp4``: H.264 (yuv420p) + AAC in an .mp4 that browsers play, written atomically."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path
from typing import ClassVar

import numpy as np

from ..errors import MissingDependencyError, StageError
from ..hookspecs import hookimpl
from ..output import atomic_file, check_output_path
from ..stages import BackendBase
from ..values import Audio, FrameChunk, Video

log = logging.getLogger(__name__)


class Mp4Writer(BackendBase):
    """H.264 + AAC .mp4 through PyAV (libx264); audio and video lengths agree to within one frame.

    Args:
        crf: x264 constant rate factor (lower is better quality and larger files; 18–28 is usual).
        preset: x264 speed preset (``ultrafast`` … ``veryslow``).
        audio_bitrate: AAC bit rate in bits per second.
        audio_rate: AAC sample rate; the speech is resampled to it.
        threads: encoder threads (0 = automatic).
    """

    stage: ClassVar[str] = "writer"
    name: ClassVar[str] = "mp4"
    capabilities: ClassVar[frozenset[str]] = frozenset({"audio", "stream", "offline"})
    suffix: ClassVar[str] = ".mp4"
    #: The file extensions it writes, and the container each one gets.
    suffixes: ClassVar[tuple[str, ...]] = (".mp4", ".m4v", ".mov", ".mkv")
    CONTAINERS: ClassVar[dict[str, str]] = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}

    def __init__(
        self, *, crf: int = 20, preset: str = "veryfast", audio_bitrate: int = 128_000, audio_rate: int = 44100, threads: int = 0
    ) -> None:
        self.crf, self.preset, self.audio_bitrate, self.audio_rate, self.threads = crf, preset, audio_bitrate, audio_rate, threads

    def load(self) -> None:
        try:
            import av  # noqa: F401
        except ImportError as exc:
            raise MissingDependencyError("av", "mp4", "the mp4 writer") from exc

    def write(self, frames: Iterable[FrameChunk], audio: Audio | None, path: Path, *, fps: float) -> Video:
        """Encode ``frames`` (and ``audio``) to ``path``; on error ``path`` is left as it was.

        The container follows the extension (one of :attr:`suffixes`).

        Raises:
            OutputError: ``path`` is not a regular file, its folder cannot be written, or its
                extension is not one of :attr:`suffixes`.
        """
        path = check_output_path(path, writer=self)
        container = self.CONTAINERS[path.suffix.lower()]
        with atomic_file(path) as tmp:
            video = self._encode(frames, audio, tmp, fps, container)
        return Video(path, video.fps, video.width, video.height, video.n_frames, video.audio_duration, video.has_audio)

    def _encode(self, frames: Iterable[FrameChunk], audio: Audio | None, tmp: Path, fps: float, container: str = "mp4") -> Video:
        import av

        rate = Fraction(fps).limit_denominator(1001)
        n = 0
        width = height = 0
        with av.open(str(tmp), mode="w", format=container) as out:
            vstream = None
            for chunk in frames:
                if vstream is None:
                    width, height = chunk.size
                    if width % 2 or height % 2:
                        log.debug("frame size %dx%d is odd; padding to even for yuv420p", width, height)
                    vstream = out.add_stream("libx264", rate=rate)
                    vstream.width, vstream.height = width + width % 2, height + height % 2
                    vstream.pix_fmt = "yuv420p"
                    vstream.options = {"crf": str(self.crf), "preset": self.preset, "movflags": "+faststart"}
                    if self.threads:
                        vstream.thread_count = self.threads
                    astream = self._add_audio(out, audio)
                if chunk.size != (width, height):
                    raise StageError("writer", self.name, f"frame size changed from {width}x{height} to {chunk.size}")
                for frame in chunk.frames:
                    if width % 2 or height % 2:
                        frame = np.pad(frame, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")
                    vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
                    vf.pts = n
                    vf.time_base = 1 / rate
                    for packet in vstream.encode(vf):
                        out.mux(packet)
                    n += 1
            if vstream is None:
                raise StageError("writer", self.name, "no frames to write")
            for packet in vstream.encode():
                out.mux(packet)
            audio_duration = self._encode_audio(out, astream, audio, n / float(rate)) if astream else 0.0
        return Video(tmp, float(rate), width, height, n, audio_duration, astream is not None)

    def _add_audio(self, out, audio: Audio | None):
        if audio is None:
            return None
        astream = out.add_stream("aac", rate=self.audio_rate)
        astream.bit_rate = self.audio_bitrate
        astream.layout = "mono"
        return astream

    def _encode_audio(self, out, astream, audio: Audio, video_seconds: float) -> float:
        import av

        samples = audio.resample(self.audio_rate).samples
        # The audio track is cut or padded to the video's length so the two agree to within a frame.
        target = int(round(video_seconds * self.audio_rate))
        if len(samples) > target:
            samples = samples[:target]
        elif len(samples) < target:
            samples = np.pad(samples, (0, target - len(samples)))
        samples = np.clip(samples, -1.0, 1.0).astype(np.float32)
        frame_size = astream.codec_context.frame_size or 1024
        pts = 0
        for start in range(0, len(samples), frame_size):
            block = samples[start : start + frame_size]
            af = av.AudioFrame.from_ndarray(block[None, :], format="fltp", layout="mono")
            af.sample_rate = self.audio_rate
            af.pts = pts
            pts += len(block)
            for packet in astream.encode(af):
                out.mux(packet)
        for packet in astream.encode():
            out.mux(packet)
        return len(samples) / self.audio_rate


@hookimpl
def register_backends(register) -> None:
    """This module's backend registers itself, exactly as a third-party plug-in does."""
    register(Mp4Writer)
