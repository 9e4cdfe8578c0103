"""Fragmented MP4 to any binary stream: a browser (Media Source Extensions) or ``ffplay -`` plays it
while it is being written.

H.264 (constrained baseline, ``tune=zerolatency``: no B-frames, no look-ahead, so every frame is
encoded as soon as it arrives) and AAC-LC, muxed with ``frag_keyframe+empty_moov+default_base_moof``
and fragments of one frame written without waiting to interleave, so a frame leaves as soon as the
next one is encoded. Nothing is written to disk and
nothing seeks: stdout, a socket or an HTTP response body all work.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, BinaryIO

import numpy as np

from ..errors import MissingDependencyError, OutputError, StageError
from ..values import AVChunk

log = logging.getLogger(__name__)

__all__ = ["Fmp4Encoder", "Fmp4Stats", "write_fmp4", "MSE_MIME"]

#: The MIME type (with codecs) to give ``MediaSource.addSourceBuffer`` for this output.
MSE_MIME = 'video/mp4; codecs="avc1.42E01F, mp4a.40.2"'


@dataclass(frozen=True)
class Fmp4Stats:
    """What :func:`write_fmp4` wrote."""

    frames: int
    samples: int
    bytes: int
    width: int
    height: int
    fps: Fraction
    sample_rate: int


class _Sink:
    """A write-only, non-seekable file object in front of the caller's stream (counts bytes)."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.bytes = 0

    def write(self, data: bytes) -> int:
        try:
            self.out.write(data)
            flush = getattr(self.out, "flush", None)
            if flush is not None:
                flush()
        except BrokenPipeError:
            raise
        except (OSError, ValueError) as exc:
            raise OutputError(f"cannot write the video stream: {exc}") from exc
        self.bytes += len(data)
        return len(data)

    def seekable(self) -> bool:
        return False

    def readable(self) -> bool:
        return False

    def writable(self) -> bool:
        return True


class Fmp4Encoder:
    """Encodes :class:`~talkinghead.values.AVChunk` s into fragmented MP4 on ``out`` as they come.

    Args:
        out: any binary stream with ``write`` (``sys.stdout.buffer``, a socket file, ``BytesIO``).
        crf: x264 quality (lower is better).
        preset: x264 speed preset.
        audio_bitrate: AAC bit rate.
        keyframe_seconds: a keyframe (and a fragment a player may start at) every this many seconds.
        fragment_ms: longest fragment (default one frame at 25 fps); a frame reaches the player as
            soon as the next one is encoded.
        threads: encoder threads (0: automatic).
    """

    def __init__(
        self,
        out: BinaryIO,
        *,
        crf: int = 23,
        preset: str = "veryfast",
        audio_bitrate: int = 96_000,
        keyframe_seconds: float = 1.0,
        fragment_ms: float = 40,
        threads: int = 0,
    ) -> None:
        try:
            import av  # noqa: F401
        except ImportError as exc:
            raise MissingDependencyError("av", "mp4", "streaming MP4 output") from exc
        if not callable(getattr(out, "write", None)):
            raise OutputError(f"cannot stream a video into a {type(out).__name__}; give a binary stream with write()")
        self._sink = _Sink(out)
        self.crf, self.preset, self.audio_bitrate = crf, preset, audio_bitrate
        self.keyframe_seconds, self.fragment_ms, self.threads = keyframe_seconds, fragment_ms, threads
        self._container: Any = None
        self._v: Any = None
        self._a: Any = None
        self._first_frame = 0
        self._frames = 0
        self._samples = 0
        self._pending = np.zeros(0, np.float32)
        self._size = (0, 0)
        self._fps = Fraction(0)
        self._rate = 0

    def _open(self, chunk: AVChunk) -> None:
        import av

        w, h = chunk.size
        self._size, self._fps, self._rate = (w, h), chunk.fps, chunk.sample_rate
        self._first_frame = chunk.first_frame
        # max_interleave_delta=1: write each packet at once instead of waiting for the other track
        # (the AAC encoder lags by a frame); the muxer still aligns the tracks (tested after decoding).
        options = {
            "movflags": "frag_keyframe+empty_moov+default_base_moof",
            "frag_duration": str(max(1, int(self.fragment_ms * 1000))),
            "max_interleave_delta": "1",
        }
        self._container = av.open(self._sink, mode="w", format="mp4", options=options)
        v = self._container.add_stream("libx264", rate=chunk.fps)
        v.width, v.height = w + w % 2, h + h % 2
        v.pix_fmt = "yuv420p"
        gop = max(1, int(round(self.keyframe_seconds * float(chunk.fps))))
        v.options = {
            "crf": str(self.crf), "preset": self.preset, "tune": "zerolatency", "profile": "baseline",
            "g": str(gop), "keyint_min": str(gop), "sc_threshold": "0",
        }
        if self.threads:
            v.thread_count = self.threads
        a = self._container.add_stream("aac", rate=chunk.sample_rate)
        a.bit_rate = self.audio_bitrate
        a.layout = "mono"
        self._v, self._a = v, a

    def write(self, chunk: AVChunk) -> None:
        """Encode one chunk (frames and samples); fragments reach ``out`` as they complete."""
        import av

        if self._container is None:
            self._open(chunk)
        elif chunk.size != self._size or chunk.fps != self._fps or chunk.sample_rate != self._rate:
            raise StageError("writer", "fmp4", "frame size, fps or sample rate changed in the middle of the stream")
        w, h = self._size
        for i, frame in enumerate(chunk.frames):
            if w % 2 or h % 2:
                frame = np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            vf.pts = chunk.first_frame + i - self._first_frame
            vf.time_base = 1 / self._fps
            for packet in self._v.encode(vf):
                self._container.mux(packet)
        self._frames += chunk.n_frames
        self._pending = np.concatenate([self._pending, np.clip(chunk.samples, -1.0, 1.0)])
        self._encode_audio(final=False)

    def _encode_audio(self, *, final: bool) -> None:
        import av

        size = self._a.codec_context.frame_size or 1024
        while len(self._pending) >= size or (final and len(self._pending)):
            block, self._pending = self._pending[:size], self._pending[size:]
            af = av.AudioFrame.from_ndarray(np.ascontiguousarray(block[None, :]), format="fltp", layout="mono")
            af.sample_rate = self._rate
            af.pts = self._samples
            self._samples += len(block)
            for packet in self._a.encode(af):
                self._container.mux(packet)

    def close(self) -> Fmp4Stats:
        """Flush the encoders and write the last fragment."""
        if self._container is None:
            raise StageError("writer", "fmp4", "no frames to write")
        self._encode_audio(final=True)
        for packet in self._v.encode():
            self._container.mux(packet)
        for packet in self._a.encode():
            self._container.mux(packet)
        self._container.close()
        self._container = None
        return Fmp4Stats(self._frames, self._samples, self._sink.bytes, *self._size, self._fps, self._rate)

    def abort(self) -> None:
        """Stop without finishing (the stream is cut); safe to call twice."""
        if self._container is not None:
            try:
                self._container.close()
            except Exception:  # the output may be gone already
                pass
            self._container = None


def write_fmp4(chunks: Iterable[AVChunk], out: BinaryIO, **options: Any) -> Fmp4Stats:
    """Encode ``chunks`` as fragmented MP4 onto ``out`` while they are produced; options as :class:`Fmp4Encoder`.

    Raises:
        OutputError: ``out`` cannot be written (a closed pipe is re-raised as ``BrokenPipeError``).
        StageError: no chunks, or their format changed mid-stream.
    """
    encoder = Fmp4Encoder(out, **options)
    try:
        for chunk in chunks:
            encoder.write(chunk)
        return encoder.close()
    except BaseException:
        encoder.abort()
        raise
