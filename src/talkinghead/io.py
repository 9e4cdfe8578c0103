"""Reading inputs at the edge: portrait images and audio files into in-memory values.

Writing outputs is the Writer stage's job; nothing else in the library touches disk.
"""

from __future__ import annotations

import io as _io
import os
from pathlib import Path
from typing import Union

import numpy as np

from .errors import AudioError, ImageError
from .values import Audio, Portrait

#: Images with more pixels than this are refused (decompression bombs, accidental raw scans).
MAX_IMAGE_PIXELS = 64_000_000
#: Audio longer than this many seconds is refused (use batch rendering for long material).
MAX_AUDIO_SECONDS = 600.0
#: Lowest sample rate accepted; anything from here up is resampled as each backend needs.
MIN_SAMPLE_RATE = 8000
#: Highest sample rate accepted (studio recordings go to 192 kHz; more is a broken or hostile header).
MAX_SAMPLE_RATE = 192_000
#: File extensions read as audio (a question given as such a file name is speech, not text).
AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".m4a", ".aac", ".webm", ".mka"})

ImageLike = Union[str, os.PathLike, bytes, np.ndarray, Portrait, "PIL.Image.Image"]  # noqa: F821
AudioLike = Union[str, os.PathLike, bytes, Audio, tuple]


def load_image(image: ImageLike) -> Portrait:
    """Read a portrait from a path, encoded bytes, a numpy RGB array or a PIL image.

    EXIF orientation is applied; alpha is composited on white; greyscale becomes RGB; 16-bit and
    32-bit images (greyscale PNG/TIFF, float TIFF) are scaled to 8 bits by their bit depth, not clipped.
    Size is checked from the header, before decoding, against :data:`MAX_IMAGE_PIXELS`; PIL's own
    ``Image.MAX_IMAGE_PIXELS`` (the host application's guard) is left as the host set it.

    Raises:
        ImageError: the file is missing, unreadable, not an image, corrupt or too large.
    """
    if isinstance(image, Portrait):
        return image
    if isinstance(image, np.ndarray):
        return Portrait(_as_rgb_array(image), source=None)
    from PIL import Image, ImageOps, UnidentifiedImageError

    source: str | None = None
    if isinstance(image, (str, os.PathLike)):
        path = Path(image)
        source = os.fspath(path)
        if not path.exists():
            raise ImageError(f"portrait file not found: {path}. Check the path.")
        if path.is_dir():
            raise ImageError(f"portrait path is a directory, not an image file: {path}")
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ImageError(f"cannot read portrait file {path}: {exc.strerror or exc}") from exc
    elif isinstance(image, (bytes, bytearray)):
        data = bytes(image)
    elif hasattr(image, "convert") and hasattr(image, "size"):
        return Portrait(_pil_to_rgb(image), source=getattr(image, "filename", None) or None)
    else:
        raise ImageError(f"cannot use a {type(image).__name__} as a portrait; pass a path, bytes or an RGB array")

    name = source or "the image data"
    if not data:
        raise ImageError(f"{name} is empty (0 bytes); give a JPEG or PNG portrait")
    try:
        with Image.open(_io.BytesIO(data)) as im:
            w, h = im.size
            if w * h > MAX_IMAGE_PIXELS:
                raise ImageError(
                    f"{name} is {w}×{h} pixels, over the {MAX_IMAGE_PIXELS // 1_000_000} megapixel limit; "
                    "resize it (a portrait of about 512–1024 px is plenty)"
                )
            im.load()
            im = ImageOps.exif_transpose(im)
            rgb = _pil_to_rgb(im)
    except ImageError:
        raise
    except Image.DecompressionBombError as exc:  # the host's own PIL limit is lower than ours
        raise ImageError(
            f"{name} is too large to decode safely ({exc}); resize it (a portrait of about 512–1024 px is plenty)"
        ) from exc
    except UnidentifiedImageError as exc:
        raise ImageError(f"{name} is not an image format talkinghead can read; use JPEG or PNG") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{name} is corrupt or truncated ({exc}); re-export it as JPEG or PNG") from exc
    return Portrait(rgb, source=source)


def _pil_to_rgb(im) -> np.ndarray:
    if im.mode in ("I", "F") or im.mode.startswith("I;16"):  # 16/32-bit greyscale: scale, never clip
        return _as_rgb_array(np.asarray(im))
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        from PIL import Image

        im = im.convert("RGBA")
        bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(bg, im)
    return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()


def _as_rgb_array(a: np.ndarray) -> np.ndarray:
    if not (a.dtype == bool or np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        raise ImageError(f"an image array must hold integer or float pixel values, got {a.dtype}")
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] not in (3, 4):
        raise ImageError(f"an image array must be (H, W, 3) RGB, got shape {a.shape}")
    if a.shape[2] == 4:
        a = a[:, :, :3]
    if a.dtype != np.uint8:
        a = _to_8bit(a)
    if a.shape[0] * a.shape[1] > MAX_IMAGE_PIXELS:
        raise ImageError(f"image array {a.shape[1]}×{a.shape[0]} is over the {MAX_IMAGE_PIXELS} pixel limit")
    return np.ascontiguousarray(a)


def _to_8bit(a: np.ndarray) -> np.ndarray:
    """Scale a high-bit-depth or float image to uint8 by its range (16-bit: / 257), never by clipping.

    Floats in [0, 1] are scaled by 255; 16-bit integers by their bit depth; wider integers by the
    depth their values use (8-bit data in a wide type stays as it is, 16-bit data is divided by 257);
    values beyond 16 bits, and floats beyond 1, by their maximum.
    """
    if a.dtype == np.bool_:
        return a.astype(np.uint8) * 255
    x = np.nan_to_num(a.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    x = np.clip(x, 0, None)
    top = float(x.max()) if x.size else 0.0
    if np.issubdtype(a.dtype, np.floating):
        scale = 255.0 if top <= 1.0 else 255.0 / top
    elif a.dtype.itemsize == 2:
        scale = 255.0 / 65535.0
    elif top <= 255:
        scale = 1.0
    elif top <= 65535:
        scale = 255.0 / 65535.0
    else:
        scale = 255.0 / top
    return np.clip(np.rint(x * scale), 0, 255).astype(np.uint8)


def load_audio(audio: AudioLike, *, sample_rate: int | None = None) -> Audio:
    """Read speech from a path, encoded bytes, an :class:`Audio`, or a ``(samples, rate)`` tuple.

    WAV, FLAC and OGG are read with soundfile; MP3, M4A and others with PyAV when it is installed.
    Multi-channel audio is averaged to mono; integer PCM is scaled to [-1, 1].

    Files are checked against :data:`MAX_AUDIO_SECONDS` before they are decoded (see
    :func:`_read_audio_file`), so over-long recordings are refused at once and in little memory.

    Args:
        sample_rate: resample to this rate if given.

    Raises:
        AudioError: missing, unreadable, empty, over-long or unsupported audio.
    """
    if isinstance(audio, Audio):
        result = audio
    elif isinstance(audio, tuple) and len(audio) == 2:
        samples, rate = audio
        try:
            rate = int(rate)
        except (TypeError, ValueError, OverflowError):
            raise AudioError(f"the sample rate must be a whole number of Hz, got {rate!r}") from None
        if rate <= 0:
            raise AudioError(f"the sample rate must be positive, got {rate}")
        result = Audio(_to_mono_float(samples), rate)
    elif isinstance(audio, np.ndarray):
        raise AudioError("a bare sample array has no sample rate; pass (samples, sample_rate) or an Audio")
    else:
        result = _read_audio_file(audio)
    if result.samples.size == 0:
        raise AudioError("the audio is empty (0 samples); give a recording with speech in it")
    if result.sample_rate < MIN_SAMPLE_RATE:
        raise AudioError(
            f"the audio's sample rate is {result.sample_rate} Hz, too low for speech; "
            f"give audio sampled at {MIN_SAMPLE_RATE} Hz or more (16 kHz or higher is best)"
        )
    _check_rate(result.sample_rate, "the audio")
    if not np.all(np.isfinite(result.samples)):
        raise AudioError("the audio contains NaN or infinite samples")
    if result.duration > MAX_AUDIO_SECONDS:
        raise AudioError(
            f"the audio is {result.duration:.0f} s long, over the {MAX_AUDIO_SECONDS:.0f} s limit; split it"
        )
    if sample_rate is not None:
        result = result.resample(sample_rate)
    return result


def _read_audio_file(audio) -> Audio:
    """Decode a file or encoded bytes, checking the length before decoding it all.

    The length in the file's header is checked first (soundfile's frame count, PyAV's stream or
    container duration); then decoding goes block by block into mono samples and stops as soon as
    it passes :data:`MAX_AUDIO_SECONDS` (for files whose header lies or has no length), so a
    3-hour recording costs neither the time nor the memory to decode it.
    """
    source = "the audio data"
    if isinstance(audio, (str, os.PathLike)):
        path = Path(audio)
        source = os.fspath(path)
        if not path.exists():
            raise AudioError(f"audio file not found: {path}. Check the path.")
        if path.is_dir():
            raise AudioError(f"audio path is a directory, not a file: {path}")
        if not path.is_file():
            raise AudioError(f"audio path is not a regular file (a device or pipe?): {path}; give an audio file")
        try:
            with open(path, "rb") as fh:
                empty = not fh.read(1)
        except OSError as exc:
            raise AudioError(f"cannot read audio file {path}: {exc.strerror or exc}") from exc
        if empty:
            raise AudioError(f"{source} is empty (0 bytes)")
        opened = lambda: open(path, "rb")  # noqa: E731 - each decoder reads the file from the start
    elif isinstance(audio, (bytes, bytearray, memoryview)):
        data = bytes(audio)
        if not data:
            raise AudioError(f"{source} is empty (0 bytes)")
        opened = lambda: _io.BytesIO(data)  # noqa: E731
    else:
        raise AudioError(f"cannot use a {type(audio).__name__} as audio; pass a path, bytes or Audio")
    import soundfile as sf

    try:
        with opened() as fh:
            return _read_with_soundfile(fh, source)
    except AudioError:
        raise
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError, EOFError):
        pass  # not a format libsndfile knows: try PyAV
    except OSError as exc:
        raise AudioError(f"cannot read audio file {source}: {exc.strerror or exc}") from exc
    try:
        with opened() as fh:
            return _read_with_av(fh, source)
    except AudioError:
        raise
    except ImportError:
        raise AudioError(
            f"{source} is not WAV, FLAC or OGG; to read MP3/M4A install PyAV: pip install 'talkinghead[mp4]'"
        ) from None
    except MemoryError:
        raise AudioError(f"{source} is too large to decode; give at most {MAX_AUDIO_SECONDS:.0f} s of audio") from None
    except Exception as exc:
        raise AudioError(f"{source} is not a readable audio file ({exc}); use WAV, FLAC, OGG or MP3") from exc


def _too_long(source: str, seconds: float | None = None) -> AudioError:
    length = f"{seconds:.0f} s long, over" if seconds is not None else "longer than"
    return AudioError(f"{source} is {length} the {MAX_AUDIO_SECONDS:.0f} s limit; split it into shorter pieces")


def _check_rate(rate: int, source: str) -> None:
    if rate > MAX_SAMPLE_RATE:
        raise AudioError(
            f"{source} claims a sample rate of {rate} Hz, over the {MAX_SAMPLE_RATE} Hz limit; "
            "resample it to 48 kHz or less"
        )


def _read_with_soundfile(fh, source: str) -> Audio:
    import soundfile as sf

    with sf.SoundFile(fh) as f:
        rate, frames, channels = int(f.samplerate), int(f.frames), int(f.channels)
        if rate <= 0 or channels <= 0:
            raise AudioError(f"{source} has no audio (sample rate {rate}, {channels} channels)")
        _check_rate(rate, source)
        if frames > MAX_AUDIO_SECONDS * rate:
            raise _too_long(source, frames / rate)
        limit = int(MAX_AUDIO_SECONDS * rate)
        chunks, n = [], 0
        block = max(4096, (1 << 22) // channels)  # about 16 MB of float32 per block at most
        while True:
            data = f.read(block, dtype="float32", always_2d=True)
            if not len(data):
                break
            chunks.append(data.mean(axis=1, dtype=np.float32) if channels > 1 else data[:, 0].copy())
            n += len(data)
            if n > limit:
                raise _too_long(source)
    samples = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    return Audio(samples, rate)


def _av_header_seconds(container, stream) -> float | None:
    """The length a container's header gives (the stream's, else the container's), or None."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000  # AV_TIME_BASE
    return None


def _read_with_av(fh, source: str) -> Audio:
    import av

    with av.open(fh) as container:
        if not container.streams.audio:
            raise AudioError(f"{source} has no audio stream")
        stream = container.streams.audio[0]
        rate = int(stream.rate or stream.codec_context.sample_rate or 0)
        if rate <= 0:
            raise AudioError(f"{source} has no sample rate in its header; convert it to WAV or FLAC")
        _check_rate(rate, source)
        seconds = _av_header_seconds(container, stream)
        if seconds is not None and seconds > MAX_AUDIO_SECONDS:
            raise _too_long(source, seconds)
        limit = int(MAX_AUDIO_SECONDS * rate)
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        chunks, n = [], 0

        def take(frames) -> None:
            nonlocal n
            for out in frames:
                block = out.to_ndarray().reshape(-1)
                chunks.append(block)
                n += len(block)
                if n > limit:
                    raise _too_long(source)

        for frame in container.decode(stream):
            take(resampler.resample(frame))
        take(resampler.resample(None))
    samples = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    return Audio(samples.astype(np.float32, copy=False), rate)


def _to_mono_float(samples) -> np.ndarray:
    try:
        samples = np.asarray(samples)
    except (TypeError, ValueError) as exc:
        raise AudioError(f"audio samples must be an array of numbers ({exc})") from None
    if samples.dtype == bool or not (np.issubdtype(samples.dtype, np.integer) or np.issubdtype(samples.dtype, np.floating)):
        raise AudioError(f"audio samples must be integer or float numbers, got {samples.dtype}")
    if samples.ndim not in (1, 2):
        raise AudioError(f"audio samples must be 1-D or 2-D, got shape {samples.shape}")
    if np.issubdtype(samples.dtype, np.integer):
        info = np.iinfo(samples.dtype)
        samples = samples.astype(np.float32) / float(max(abs(info.min), info.max))
    if samples.ndim == 2:
        # soundfile gives (frames, channels); accept (channels, frames) for short channel counts
        if samples.shape[0] <= 8 and samples.shape[1] > 8:
            samples = samples.T
        if samples.shape[1] == 0:
            raise AudioError(f"the audio has no channels (shape {samples.shape})")
        samples = samples.mean(axis=1, dtype=np.float64)
    return samples.astype(np.float32)


def check_speech(audio: Audio, *, silence_dbfs: float = -55.0) -> None:
    """Raise :class:`AudioError` if ``audio`` is empty or silent (peak below ``silence_dbfs``)."""
    if audio.samples.size == 0:
        raise AudioError("the audio is empty; give a recording with speech in it")
    peak = float(np.max(np.abs(audio.samples)))
    if peak <= 10 ** (silence_dbfs / 20):
        raise AudioError(
            f"the audio is silent (peak {20 * np.log10(max(peak, 1e-12)):.0f} dBFS); "
            "check the recording or the microphone level"
        )
