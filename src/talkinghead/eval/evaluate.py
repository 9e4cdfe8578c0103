"""``evaluate(video)``: the quality report of a rendered video (see ``docs/eval.md``)."""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import AudioError, ConfigError
from .measure import Curves, measure_frames, read_frames
from .metrics import (
    blink_events,
    envelope_offset,
    frozen_runs,
    head_motion_stats,
    lag_correlations,
    speech_envelope,
)

log = logging.getLogger(__name__)

__all__ = ["THRESHOLDS", "EvalReport", "evaluate"]

#: Where a metric turns into a flag in the report (documented in docs/eval.md).
THRESHOLDS = {
    "lip_sync_r": 0.3,  # best-lag Pearson r below this: the mouth does not follow the speech
    "lip_sync_lag_frames": 1,  # |best lag| above this: audio and picture are out of step
    "mouth_range": 0.02,  # aperture spread (p95 - p5, inter-ocular units) under this: a still mouth, no r
    "frozen_s": 0.5,  # a still picture at least this long is a frozen stretch
    "length_difference_s": 0.1,  # audio track and video differ by more than this
    "identity_drift_ssim": 0.1,  # face SSIM to the reference falls by more than this from start to end
    "sharpness_ratio": 0.5,  # face sharpness below this fraction of the reference's
}


@dataclass
class EvalReport:
    """The report of :func:`evaluate`: ``data`` (JSON-ready), the per-frame ``curves`` and the speech envelope."""

    data: dict[str, Any]
    curves: Curves
    envelope: np.ndarray
    blinks: list[tuple[int, int]] = field(default_factory=list)
    frozen: list[tuple[int, int]] = field(default_factory=list)

    @property
    def flags(self) -> list[str]:
        return list(self.data.get("flags", []))

    def to_json(self, *, curves: bool = False) -> str:
        """The report as JSON (``curves=True`` adds every per-frame curve)."""
        data = dict(self.data)
        if curves:
            data["curves"] = {k: [_num(v) for v in arr] for k, arr in self.curves.values.items()}
            data["curves"]["speech_envelope"] = [_num(v) for v in self.envelope]
        return json.dumps(_clean(data), indent=2, ensure_ascii=False)

    def plot(self):
        """A PIL image with the per-frame curves (see :func:`talkinghead.eval.plot.plot_report`)."""
        from .plot import plot_report

        return plot_report(self)


def evaluate(
    video: str | os.PathLike,
    *,
    reference: str | os.PathLike | None = None,
    audio: str | os.PathLike | None = None,
    syncnet: str | os.PathLike | None = None,
    max_lag: int = 8,
    device: str = "cpu",
    progress: Callable[[int], None] | None = None,
) -> EvalReport:
    """Measure a talking-head video without model weights (SyncNet's only when given).

    Args:
        video: the video file (anything PyAV reads: .mp4, .webm, .mov…).
        reference: the portrait it was made from (identity and sharpness are relative to it;
            default: the first frame where a face is found).
        audio: the speech it should say; adds the offset between it and the video's audio track
            (and stands in for the track when the video has none).
        syncnet: path of SyncNet weights (``syncnet_v2.model``) for LSE-C / LSE-D.
        max_lag: the lip-sync search covers lags of ±``max_lag`` frames.
        device: torch device for SyncNet.
        progress: ``progress(frames_measured)`` every 25 frames.

    Raises:
        VideoError: the video cannot be read. ImageError / NoFaceError: the reference cannot be used.
        AudioError: ``audio`` cannot be read. MissingDependencyError: PyAV, mediapipe (or torch for
        SyncNet) missing.
    """
    from ..io import load_audio, load_image

    if max_lag < 1:
        raise ConfigError(f"max_lag must be at least 1 frame, got {max_lag}")
    ref_image = load_image(reference).image if reference is not None else None
    given = load_audio(audio) if audio is not None else None
    fps, frames = read_frames(video)
    curves = measure_frames(
        frames, fps, reference=ref_image, reference_name=os.fspath(reference) if reference else "", progress=progress
    )
    warnings = list(curves.warnings)
    try:
        track = load_audio(video)
    except AudioError as exc:
        track = None
        warnings.append(f"the video has no readable audio track ({exc})")
    speech = track if track is not None else given
    n = curves.n_frames
    video_s = n / fps
    envelope = speech_envelope(speech.samples, speech.sample_rate, fps, n) if speech is not None else np.full(n, np.nan)
    data: dict[str, Any] = {
        "video": os.fspath(video),
        "fps": fps,
        "frames": n,
        "duration_s": video_s,
        "size": list(curves.size),
        "reference": curves.reference,
    }
    flags: list[str] = []

    # -- audio and video length, offset ---------------------------------------------------------------
    av: dict[str, Any] = {"video_s": video_s, "audio_track_s": track.duration if track is not None else None}
    if track is not None:
        av["length_difference_ms"] = (track.duration - video_s) * 1000
        if abs(track.duration - video_s) > THRESHOLDS["length_difference_s"]:
            flags.append(f"the audio track is {track.duration - video_s:+.2f} s longer than the video")
    if given is not None:
        av["given_audio_s"] = given.duration
        if track is not None:
            rate = 100.0
            a = speech_envelope(given.samples, given.sample_rate, rate, int(given.duration * rate))
            b = speech_envelope(track.samples, track.sample_rate, rate, int(track.duration * rate))
            offset, r = envelope_offset(a, b, rate, max_s=1.0)
            av["track_offset_ms"] = offset * 1000  # positive: the track is later than the given audio
            av["track_offset_r"] = r
            if abs(offset) > 1.5 / fps:
                flags.append(f"the video's audio is {offset * 1000:+.0f} ms off the given audio")
    data["av"] = av

    # -- lip sync ---------------------------------------------------------------------------------------------
    aperture = curves["aperture"]
    lips: dict[str, Any] = {"max_lag": max_lag, "face_frames": int(np.isfinite(aperture).sum())}
    seen = aperture[np.isfinite(aperture)]
    if seen.size:
        lips["mouth_range"] = float(np.percentile(seen, 95) - np.percentile(seen, 5))
    if speech is not None and seen.size >= 8 and lips["mouth_range"] < THRESHOLDS["mouth_range"]:
        flags.append(f"the mouth hardly moves while there is sound (range {lips['mouth_range']:.3f})")
    elif speech is not None and seen.size >= 8:
        by_lag = lag_correlations(aperture, envelope, max_lag)
        finite = {k: v for k, v in by_lag.items() if np.isfinite(v)}
        if finite:
            lag = max(sorted(finite, key=abs), key=lambda k: finite[k])
            lips.update(r=finite[lag], lag_frames=lag, lag_ms=lag * 1000 / fps, r_at_zero=by_lag.get(0))
            lips["r_by_lag"] = {str(k): v for k, v in sorted(by_lag.items())}
            if finite[lag] < THRESHOLDS["lip_sync_r"]:
                flags.append(f"the mouth does not follow the speech (r = {finite[lag]:.2f})")
            elif abs(lag) > THRESHOLDS["lip_sync_lag_frames"]:
                late = "after" if lag > 0 else "before"
                flags.append(f"the mouth moves {abs(lag)} frame(s) ({abs(lag) * 1000 / fps:.0f} ms) {late} the sound")
    data["lip_sync"] = lips

    # -- blinks, head motion ------------------------------------------------------------------------------
    blinks = blink_events(curves["openness"], max_frames=max(1, round(0.6 * fps)))
    minutes = video_s / 60
    data["blinks"] = {
        "count": len(blinks),
        "per_minute": len(blinks) / minutes if minutes > 0 else None,
        "starts_s": [a / fps for a, _ in blinks],
    }
    data["head_motion"] = head_motion_stats({k: curves[k] for k in ("roll", "yaw", "pitch", "x", "y", "scale")}, fps)

    # -- identity and sharpness ---------------------------------------------------------------------------
    s = curves["ssim"]
    second = max(1, int(round(fps)))
    identity: dict[str, Any] = {"reference": curves.reference}
    if np.isfinite(s).any():
        identity.update(
            ssim_mean=float(np.nanmean(s)),
            ssim_min=float(np.nanmin(s)),
            psnr_mean=float(np.nanmean(np.where(np.isinf(curves["psnr"]), 100.0, curves["psnr"]))),
            drift_ssim=float(np.nanmean(s[:second]) - np.nanmean(s[-second:])) if n >= 2 * second else None,
        )
        if identity["drift_ssim"] is not None and identity["drift_ssim"] > THRESHOLDS["identity_drift_ssim"]:
            flags.append(f"the face drifts away from the reference (SSIM falls by {identity['drift_ssim']:.2f})")
    data["identity"] = identity
    sharp = curves["sharpness"]
    sharpness: dict[str, Any] = {"reference": curves.reference_sharpness}
    if np.isfinite(sharp).any():
        sharpness["laplacian_var_mean"] = float(np.nanmean(sharp))
        if curves.reference_sharpness > 0:
            ratio = float(np.nanmean(sharp) / curves.reference_sharpness)
            sharpness["ratio_to_reference"] = ratio
            if ratio < THRESHOLDS["sharpness_ratio"]:
                flags.append(f"the face is blurrier than the reference (sharpness ratio {ratio:.2f})")
    data["sharpness"] = sharpness

    # -- frozen or duplicated frames ------------------------------------------------------------------------
    repeats = sum(b - a - 1 for a, b in curves.still)
    runs = frozen_runs(curves.still, fps, min_s=THRESHOLDS["frozen_s"])
    speaking = np.isfinite(envelope) & (envelope > 0.1 * np.nanmax(envelope)) if speech is not None else None
    frozen_speaking = 0
    for a, b in runs:
        if speaking is not None:
            frozen_speaking += int(speaking[a:b].sum())
    longest = max((b - a for a, b in runs), default=0)
    data["frozen"] = {
        "duplicate_frames": int(repeats),
        "duplicate_ratio": float(repeats / max(1, n - 1)),
        "runs": [[a / fps, b / fps] for a, b in runs],
        "longest_s": longest / fps,
        "frozen_while_speaking_s": frozen_speaking / fps,
    }
    if runs:
        flags.append(f"the picture is frozen for {longest / fps:.2f} s (longest of {len(runs)} stretch(es))")

    # -- SyncNet ------------------------------------------------------------------------------------------------
    if syncnet is not None:
        if speech is None:
            raise AudioError("SyncNet needs the speech: the video has no audio track; pass audio=")
        from .syncnet import syncnet_scores

        data["syncnet"] = syncnet_scores(video, speech, curves, syncnet, device=device)
    data["warnings"] = warnings
    data["flags"] = flags
    return EvalReport(data, curves, envelope, blinks, runs)


def _num(v: float) -> float | None:
    return None if v is None or not math.isfinite(float(v)) else round(float(v), 6)


def _clean(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return _num(float(obj))
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, Path):
        return os.fspath(obj)
    return obj
