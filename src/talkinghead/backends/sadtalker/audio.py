"""SadTalker audio front end: mel spectrogram, per-frame mel windows, blink sequence.

Numerically the same as upstream SadTalker's ``src/utils/audio.py`` +
``src/generate_batch.py`` (Wav2Lip hyper-parameters) but written with numpy/scipy
only, and with the video frame rate as a parameter (upstream hard-codes 25 fps):

- samples per video frame = ``sample_rate / fps`` (640 at 16 kHz / 25 fps);
- the audio is cut or zero-padded to ``int(num_frames * samples_per_frame)``;
- pre-emphasis ``y[n] = x[n] - 0.97 x[n-1]`` (float64 from here on);
- STFT: n_fft 800, hop 200, periodic Hann window of 800, ``center=True`` with 400
  zeros on each side (librosa >= 0.10 semantics), magnitude;
- Slaney-style mel filterbank (80 bins, 55-7600 Hz, area-normalised, float32 like
  librosa's default), ``20 log10(max(1e-5, M)) - 20`` dB, symmetric normalisation
  ``clip(8 (S + 100) / 100 - 4, -4, 4)``;
- video frame ``i`` uses 16 mel frames starting at ``int(80 * ((i - 2) / fps))``
  (80 mel frames per second, 2 frames of look-back, truncation toward zero), indices
  clamped to the spectrogram, transposed to (80, 16).

Only numpy and scipy are needed; nothing here imports torch or librosa.
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass

import numpy as np

__all__ = [
    "MelConfig",
    "blink_sequence",
    "mel_filterbank",
    "mel_spectrogram",
    "mel_windows",
    "prepare_wav",
]

MEL_STEP = 16  # mel frames per window (the SyncNet window)


@dataclass(frozen=True)
class MelConfig:
    """Hyper-parameters of the mel front end (upstream's Wav2Lip hparams)."""

    sample_rate: int = 16000
    n_fft: int = 800
    hop: int = 200
    win: int = 800
    n_mels: int = 80
    fmin: float = 55.0
    fmax: float = 7600.0
    preemphasis: float = 0.97
    min_level_db: float = -100.0
    ref_level_db: float = 20.0
    max_abs_value: float = 4.0


DEFAULT = MelConfig()


def prepare_wav(samples: np.ndarray, fps: float, sample_rate: int = 16000) -> tuple[np.ndarray, int]:
    """Cut or zero-pad mono samples to a whole number of video frames.

    Args:
        samples: Mono samples at ``sample_rate``.
        fps: Video frame rate.
        sample_rate: Sample rate of ``samples``.

    Returns:
        ``(samples, num_frames)`` with ``len(samples) == int(num_frames * sr / fps)``; this is
        upstream's own frame count (rounded down), which decides how many mel windows exist. The
        animator renders :func:`talkinghead.stages.frame_count` frames and pads the audio so that
        enough windows exist.
    """
    wav = np.asarray(samples, dtype=np.float32).reshape(-1)
    per_frame = sample_rate / fps
    num_frames = int(len(wav) / per_frame)
    length = int(num_frames * per_frame)
    if len(wav) > length:
        wav = wav[:length]
    elif len(wav) < length:
        wav = np.pad(wav, (0, length - len(wav)))
    return wav, num_frames


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    f = np.asarray(f, dtype=np.float64)
    f_sp = 200.0 / 3
    mels = f / f_sp
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep, mels)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    f_sp = 200.0 / 3
    freqs = f_sp * m
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), freqs)


@functools.lru_cache(maxsize=8)
def mel_filterbank(
    sample_rate: int = 16000, n_fft: int = 800, n_mels: int = 80, fmin: float = 55.0, fmax: float = 7600.0
) -> np.ndarray:
    """Slaney mel filterbank with area normalisation, (n_mels, 1 + n_fft//2) float32."""
    fft_freqs = np.linspace(0.0, sample_rate / 2.0, 1 + n_fft // 2)
    mel_pts = np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2)
    mel_f = _mel_to_hz(mel_pts)
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fft_freqs[None, :]
    weights = np.zeros((n_mels, len(fft_freqs)), dtype=np.float64)
    for i in range(n_mels):
        lower = -ramps[i] / fdiff[i]
        upper = ramps[i + 2] / fdiff[i + 1]
        weights[i] = np.maximum(0.0, np.minimum(lower, upper))
    enorm = 2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels])
    weights *= enorm[:, None]
    out = weights.astype(np.float32)
    out.setflags(write=False)
    return out


def _stft_magnitude(y: np.ndarray, cfg: MelConfig) -> np.ndarray:
    pad = cfg.n_fft // 2
    padded = np.pad(y, (pad, pad))
    n_frames = 1 + len(y) // cfg.hop
    idx = np.arange(cfg.n_fft)[None, :] + cfg.hop * np.arange(n_frames)[:, None]
    n = np.arange(cfg.win)
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * n / cfg.win)  # periodic Hann
    if cfg.win < cfg.n_fft:
        lpad = (cfg.n_fft - cfg.win) // 2
        window = np.pad(window, (lpad, cfg.n_fft - cfg.win - lpad))
    spec = np.fft.rfft(padded[idx] * window[None, :], n=cfg.n_fft, axis=1)
    return np.abs(spec).T  # (1 + n_fft//2, n_frames)


def mel_spectrogram(wav: np.ndarray, cfg: MelConfig = DEFAULT) -> np.ndarray:
    """Normalised log-mel spectrogram of mono samples.

    Args:
        wav: Mono samples at ``cfg.sample_rate``.
        cfg: Front-end hyper-parameters.

    Returns:
        (n_mels, 1 + len(wav)//hop) float64 values in [-4, 4].
    """
    x = np.asarray(wav, dtype=np.float64).reshape(-1)
    y = np.empty_like(x)
    if len(x):
        y[0] = x[0]
        y[1:] = x[1:] - cfg.preemphasis * x[:-1]
    mag = _stft_magnitude(y, cfg)
    mel = np.dot(mel_filterbank(cfg.sample_rate, cfg.n_fft, cfg.n_mels, cfg.fmin, cfg.fmax), mag)
    min_level = np.exp(cfg.min_level_db / 20 * np.log(10))
    s = 20 * np.log10(np.maximum(min_level, mel)) - cfg.ref_level_db
    m = cfg.max_abs_value
    return np.clip((2 * m) * ((s - cfg.min_level_db) / (-cfg.min_level_db)) - m, -m, m)


def mel_windows(
    samples: np.ndarray, fps: float = 25.0, cfg: MelConfig = DEFAULT
) -> tuple[np.ndarray, int]:
    """Per-video-frame mel windows (upstream ``indiv_mels``).

    Args:
        samples: Mono samples at ``cfg.sample_rate`` (resample before calling).
        fps: Video frame rate; upstream's behaviour is ``fps=25``.
        cfg: Front-end hyper-parameters.

    Returns:
        ``(windows, num_frames)``: windows is (num_frames, n_mels, 16) float32.
    """
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    wav, num_frames = prepare_wav(samples, fps, cfg.sample_rate)
    spec = mel_spectrogram(wav, cfg).T  # (T_mel, n_mels)
    mel_per_second = cfg.sample_rate / cfg.hop  # 80
    out = np.empty((num_frames, cfg.n_mels, MEL_STEP), dtype=np.float32)
    last = spec.shape[0] - 1
    steps = np.arange(MEL_STEP)
    for i in range(num_frames):
        start = int(mel_per_second * ((i - 2) / float(fps)))
        seq = np.clip(start + steps, 0, last)
        out[i] = spec[seq, :].T
    return out, num_frames


_BLINK_PROFILE = np.array([0.5, 0.9, 1.0, 0.9, 0.5])


def blink_sequence(
    num_frames: int,
    fps: float = 25.0,
    *,
    seed: int | None = None,
    rng: random.Random | None = None,
) -> np.ndarray:
    """Random eye-blink ratio sequence (upstream ``generate_blink_seq_randomly``).

    At 25 fps this is upstream's algorithm: nothing for <= 20 frames; otherwise gaps
    drawn with ``rng.choice(range(min(10, T), min(T // 2, 70)))`` frames, each followed
    by the 5-frame profile [0.5, 0.9, 1.0, 0.9, 0.5], until the next blink would not end
    before the last frame. ``random.seed(s)`` + upstream equals ``seed=s`` here. At
    other rates the durations keep their length in seconds (0.8 s minimum clip, gaps
    0.4-2.8 s, blink 0.2 s; the profile is resampled linearly). Where upstream would
    crash on an empty gap range (e.g. 21 frames) this returns no blink.

    Args:
        num_frames: Number of video frames T.
        fps: Video frame rate.
        seed: Seed for a private ``random.Random`` (ignored when ``rng`` is given).
        rng: Random generator to draw from.

    Returns:
        (T, 1) float64 blink ratios in [0, 1].
    """
    if rng is None:
        rng = random.Random(seed)
    ratio = np.zeros((num_frames, 1))
    scale = fps / 25.0
    min_clip = int(round(20 * scale))
    gap_lo = int(round(10 * scale))
    gap_hi = int(round(70 * scale))
    blink_len = max(int(round(5 * scale)), 1)
    if blink_len == 5:
        profile = _BLINK_PROFILE
    else:
        profile = np.interp(np.linspace(0, 4, blink_len), np.arange(5), _BLINK_PROFILE)
    if num_frames <= min_clip:
        return ratio
    choices = range(min(gap_lo, num_frames), min(int(num_frames / 2), gap_hi))
    if len(choices) == 0:
        return ratio
    frame_id = 0
    while frame_id in range(num_frames):
        start = rng.choice(choices)
        if frame_id + start + blink_len <= num_frames - 1:
            ratio[frame_id + start : frame_id + start + blink_len, 0] = profile
            frame_id = frame_id + start + blink_len
        else:
            break
    return ratio
