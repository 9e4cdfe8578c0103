"""Checks on uploaded files, done before anything is decoded.

The type is taken from the file's first bytes (its *magic*), never from the name or the
``Content-Type`` a client sends; then the size in pixels (images, from the header) or in seconds
(audio, from the container's packets) is checked against the server's limits, and only then is
the file decoded with :func:`talkinghead.io.load_image` / :func:`talkinghead.io.load_audio`.
Client file names are never used.
"""

from __future__ import annotations

import io
import logging

from ..errors import AudioError, ImageError
from ..io import load_audio, load_image
from ..values import Audio, Portrait
from .errors import ApiError

log = logging.getLogger(__name__)

__all__ = ["sniff_image", "sniff_audio", "check_image", "decode_image", "probe_audio_seconds", "decode_audio"]

IMAGE_TYPES = "PNG, JPEG or WebP"
AUDIO_TYPES = "WAV, FLAC, OGG/Opus, MP3, M4A or WebM"


def sniff_image(data: bytes) -> str | None:
    """``"png"``, ``"jpeg"`` or ``"webp"`` from the first bytes, or None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def sniff_audio(data: bytes) -> str | None:
    """The audio container from the first bytes (``wav``, ``flac``, ``ogg``, ``mp3``, ``mp4``, ``webm``), or None."""
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return "wav"
    if data.startswith(b"fLaC"):
        return "flac"
    if data.startswith(b"OggS"):
        return "ogg"
    if data.startswith(b"ID3") or (len(data) >= 2 and data[0] == 0xFF and (data[1] & 0xE0) == 0xE0):
        return "mp3"
    if len(data) >= 12 and data[4:8] == b"ftyp":
        return "mp4"
    if data.startswith(b"\x1a\x45\xdf\xa3"):
        return "webm"
    return None


def unsupported(what: str, kinds: str) -> ApiError:
    return ApiError(415, "UnsupportedMediaType", f"the {what} is not a {kinds} file (checked from its content)")


def check_image(data: bytes, *, max_pixels: int) -> tuple[str, tuple[int, int]]:
    """The image's format and (width, height), read from its header without decoding the pixels.

    Raises:
        ApiError: 415 when it is not PNG/JPEG/WebP.
        ImageError: it is corrupt, or larger than ``max_pixels``.
    """
    if not data:
        raise ImageError(f"the portrait upload is empty (0 bytes); choose a {IMAGE_TYPES} picture")
    kind = sniff_image(data)
    if kind is None:
        raise unsupported("portrait", IMAGE_TYPES)
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data), formats=[kind.upper()]) as im:
            w, h = im.size
            frames = getattr(im, "n_frames", 1)
    except Image.DecompressionBombError:
        raise ImageError(
            f"the portrait's dimensions are far over the {max_pixels / 1e6:g} megapixel limit; resize it"
        ) from None
    except Exception as exc:
        raise ImageError(f"the portrait is a corrupt {kind.upper()} file ({exc}); re-export it") from None
    if w * h > max_pixels:
        raise ImageError(
            f"the portrait is {w}×{h} pixels, over this server's {max_pixels / 1e6:g} megapixel limit; "
            "resize it (about 512–1024 px is plenty)"
        )
    if frames != 1:
        raise ImageError("the portrait is an animated image; upload a single still picture")
    return kind, (w, h)


def decode_image(data: bytes, *, max_pixels: int) -> Portrait:
    """Check the header (:func:`check_image`), then decode to a :class:`Portrait`."""
    check_image(data, max_pixels=max_pixels)
    return load_image(data)


def probe_audio_seconds(data: bytes) -> float:
    """The length of the audio in seconds, from its packets' timestamps (no samples are decoded).

    Works for containers without a declared duration too (a browser's MediaRecorder WebM).

    Raises:
        AudioError: the container cannot be read.
    """
    try:
        import av
    except ImportError:
        return _probe_with_soundfile(data)
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            if not container.streams.audio:
                raise AudioError("the upload has no audio stream")
            stream = container.streams.audio[0]
            tb = float(stream.time_base) if stream.time_base else 1.0 / (stream.rate or 1)
            frame_size = stream.codec_context.frame_size or 0
            rate = stream.rate or 0
            end = summed = 0.0
            packets = 0
            for packet in container.demux(stream):
                if packet.size == 0:
                    continue
                packets += 1
                summed += (packet.duration or 0) * tb
                if packet.pts is not None:
                    end = max(end, (packet.pts + (packet.duration or 0)) * tb)
            start = float(stream.start_time * tb) if stream.start_time else 0.0
            # three measures; a container that lies in one of them cannot hide a long stream
            by_frames = packets * frame_size / rate if rate and frame_size else 0.0
            return max(0.0, end - start, summed, by_frames)
    except AudioError:
        raise
    except Exception as exc:
        raise AudioError(f"the audio upload cannot be read ({exc}); use {AUDIO_TYPES}") from None


def _probe_with_soundfile(data: bytes) -> float:
    import soundfile as sf

    try:
        info = sf.info(io.BytesIO(data))
    except Exception as exc:
        raise AudioError(f"the audio upload cannot be read ({exc}); install PyAV for MP3/M4A/WebM") from None
    return info.frames / float(info.samplerate or 1)


def decode_audio(data: bytes, *, max_seconds: float) -> Audio:
    """Check the type and the length, then decode to :class:`Audio`.

    Raises:
        ApiError: 415 when the content is not a known audio container.
        AudioError: unreadable, or longer than ``max_seconds``.
    """
    if not data:
        raise AudioError(f"the audio upload is empty (0 bytes); send a {AUDIO_TYPES} recording")
    if sniff_audio(data) is None:
        raise unsupported("audio", AUDIO_TYPES)
    seconds = probe_audio_seconds(data)
    if seconds > max_seconds:
        raise AudioError(
            f"the audio is {seconds:.0f} s long, over this server's {max_seconds:g} s limit; send a shorter clip"
        )
    audio = load_audio(data)
    if audio.duration > max_seconds + 1.0:  # a container whose timestamps lie
        raise AudioError(f"the audio is {audio.duration:.0f} s long, over this server's {max_seconds:g} s limit")
    return audio
