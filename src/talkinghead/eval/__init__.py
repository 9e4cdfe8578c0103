"""Quality of rendered videos without model weights: ``talkinghead.eval.evaluate(video)``.

Lip sync (mouth aperture from face landmarks against the speech envelope: Pearson r and the best
lag in frames), audio/video length and offset, blink rate, head-motion statistics, identity drift
and sharpness relative to the portrait (SSIM / PSNR on the aligned face, Laplacian variance),
frozen or duplicated frames — and LSE-C / LSE-D through SyncNet when its weights are given.
``docs/eval.md`` defines every number.
"""

from __future__ import annotations

from .evaluate import THRESHOLDS, EvalReport, evaluate
from .measure import frame_landmarks, lip_apertures
from .metrics import best_lag_correlation, lag_correlations, silent_stretches

__all__ = [
    "THRESHOLDS",
    "EvalReport",
    "best_lag_correlation",
    "evaluate",
    "frame_landmarks",
    "lag_correlations",
    "lip_apertures",
    "silent_stretches",
]
