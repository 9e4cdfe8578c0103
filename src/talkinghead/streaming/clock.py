"""The one clock of a stream: frames and audio samples counted together.

Frame ``i`` covers audio samples ``[i * spf, (i + 1) * spf)`` with ``spf = sample_rate / fps`` a whole
number. Every timestamp is derived from these counters, never from the wall clock, so a stream's
audio and video cannot drift apart however long it runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from ..errors import ConfigError

__all__ = ["STREAM_FPS", "STREAM_SAMPLE_RATE", "StreamClock", "as_fps"]

#: Default frame rate of live streams (LiveKit, Pipecat and most real-time peers use 25).
STREAM_FPS = 25
#: Default audio rate of streams: 960 samples per frame at 25 fps, 1200 at 20; WebRTC may prefer 48000.
STREAM_SAMPLE_RATE = 24000

_COMMON_RATES = (16000, 22050, 24000, 32000, 44100, 48000)


def as_fps(fps: float | int | Fraction | str) -> Fraction:
    """``fps`` as an exact fraction (29.97 becomes 30000/1001)."""
    try:
        value = fps if isinstance(fps, Fraction) else Fraction(str(fps)).limit_denominator(1001)
    except (ValueError, ZeroDivisionError):
        raise ConfigError(f"fps must be a number, got {fps!r}") from None
    if not 1 <= value <= 60:
        raise ConfigError(f"fps must be between 1 and 60, got {fps}")
    return value


@dataclass(frozen=True)
class StreamClock:
    """Frame rate and sample rate of a stream, with one frame covering a whole number of samples.

    Args:
        fps: frames per second (``25``, ``Fraction(25)``...).
        sample_rate: audio samples per second.

    Raises:
        ConfigError: the pair does not divide (e.g. 22050 Hz at 20 fps); the message lists rates
            that work with this fps.
    """

    fps: Fraction = Fraction(STREAM_FPS)
    sample_rate: int = STREAM_SAMPLE_RATE

    def __post_init__(self) -> None:
        fps = as_fps(self.fps)
        object.__setattr__(self, "fps", fps)
        rate = int(self.sample_rate)
        if rate != self.sample_rate or not 8000 <= rate <= 192000:
            raise ConfigError(f"sample_rate must be a whole number of Hz between 8000 and 192000, got {self.sample_rate}")
        object.__setattr__(self, "sample_rate", rate)
        spf = rate / fps
        if spf.denominator != 1:
            good = [r for r in _COMMON_RATES if (r / fps).denominator == 1]
            hint = f"use sample_rate={' or '.join(map(str, good))}" if good else "use a whole-number fps such as 25"
            raise ConfigError(
                f"at {float(fps):g} fps one frame would cover {float(spf):.2f} samples of {rate} Hz audio; "
                f"a stream needs a whole number of samples per frame: {hint}"
            )

    @property
    def samples_per_frame(self) -> int:
        """Audio samples covered by one frame (960 at 25 fps and 24 kHz)."""
        return int(self.sample_rate / self.fps)

    def frames_for(self, n_samples: int) -> int:
        """Whole frames needed to cover ``n_samples`` samples (rounded up)."""
        spf = self.samples_per_frame
        return -(-int(n_samples) // spf)

    def sample_of(self, frame: int) -> int:
        """Index of the first sample covered by ``frame``."""
        return int(frame) * self.samples_per_frame

    def pts(self, frame: int) -> Fraction:
        """Presentation time of ``frame`` in seconds (exact)."""
        return int(frame) / self.fps

    def seconds(self, frames: int) -> float:
        """Duration of ``frames`` frames in seconds."""
        return float(int(frames) / self.fps)
