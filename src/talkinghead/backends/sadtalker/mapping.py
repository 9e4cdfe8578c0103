"""SadTalker MappingNet and face-render input preparation.

- :class:`MappingNet`: 27-frame coefficient window -> head-pose bins (yaw, pitch,
  roll; 66 each), translation (3) and 15x3 expression offsets. ``coeff_nc`` is 70
  (``mapping_00229-model.pth.tar['mapping']``) or 73 (``mapping_00109``, full modes).
- :func:`render_inputs`: the per-frame MappingNet inputs (upstream
  ``get_facerender_data``) without any batching, plus free-view angle sequences.

The keypoint transform that turns MappingNet's output into driving keypoints lives in
:mod:`.keypoints`.

Torch is imported at module top: import this module only where torch is wanted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ...errors import ModelLoadError

__all__ = [
    "SEMANTIC_RADIUS",
    "MappingNet",
    "RenderInputs",
    "camera_sequence",
    "load_mapping_net",
    "render_inputs",
]

SEMANTIC_RADIUS = 13  # window = 2*13+1 = 27 frames


class MappingNet(nn.Module):
    """Coefficient window (B, coeff_nc, 27) -> head pose / translation / expression."""

    def __init__(
        self, coeff_nc: int = 70, descriptor_nc: int = 1024, layer: int = 3, num_kp: int = 15, num_bins: int = 66
    ) -> None:
        super().__init__()
        self.coeff_nc = coeff_nc
        self.layer = layer
        self.first = nn.Sequential(nn.Conv1d(coeff_nc, descriptor_nc, kernel_size=7, padding=0, bias=True))
        for i in range(layer):
            net = nn.Sequential(nn.LeakyReLU(0.1), nn.Conv1d(descriptor_nc, descriptor_nc, 3, padding=0, dilation=3))
            setattr(self, f"encoder{i}", net)
        self.pooling = nn.AdaptiveAvgPool1d(1)
        self.fc_roll = nn.Linear(descriptor_nc, num_bins)
        self.fc_pitch = nn.Linear(descriptor_nc, num_bins)
        self.fc_yaw = nn.Linear(descriptor_nc, num_bins)
        self.fc_t = nn.Linear(descriptor_nc, 3)
        self.fc_exp = nn.Linear(descriptor_nc, 3 * num_kp)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.first(x)
        for i in range(self.layer):
            out = getattr(self, f"encoder{i}")(out) + out[:, :, 3:-3]
        out = self.pooling(out).reshape(out.shape[0], -1)
        return {
            "yaw": self.fc_yaw(out),
            "pitch": self.fc_pitch(out),
            "roll": self.fc_roll(out),
            "t": self.fc_t(out),
            "exp": self.fc_exp(out),
        }

    @torch.inference_mode()
    def predict(self, windows: np.ndarray) -> dict[str, np.ndarray]:
        """Numpy convenience: (B, coeff_nc, 27) -> dict of float32 arrays."""
        p = next(self.parameters())
        out = self(torch.as_tensor(np.asarray(windows, np.float32), device=p.device))
        return {k: v.float().cpu().numpy() for k, v in out.items()}


def load_mapping_net(state: Mapping[str, object], device: str | torch.device = "cpu") -> MappingNet:
    """Build a MappingNet from a ``['mapping']`` state dict; coeff_nc (70/73) is read from it."""
    tensors = {k: v if isinstance(v, torch.Tensor) else torch.from_numpy(np.asarray(v)) for k, v in state.items()}
    if "first.0.weight" not in tensors:
        raise ModelLoadError("not a SadTalker mapping checkpoint (no 'first.0.weight'); use mapping_00229/00109")
    coeff_nc = int(tensors["first.0.weight"].shape[1])
    model = MappingNet(coeff_nc=coeff_nc)
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        raise ModelLoadError(f"mapping checkpoint does not fit MappingNet({coeff_nc}): {exc}") from exc
    return model.to(device).eval()


# ---------------------------------------------------------------- input preparation
def camera_sequence(degrees: Sequence[float], frame_num: int) -> np.ndarray:
    """Per-frame degrees from a free-view list (upstream ``gen_camera_pose`` without padding).

    One value is held for every frame; several are walked at a constant angular speed
    (total path / (frames - 1)) with ``np.arange`` steps, then cut or padded with the
    last value. Consecutive equal values (where upstream divides by zero) add nothing.
    """
    vals = [float(d) for d in degrees]
    if not vals:
        raise ValueError("free-view degree list is empty")
    if len(vals) == 1 or frame_num <= 1:
        return np.full((frame_num,), vals[0], dtype=np.float64)
    total = sum(abs(b - a) for a, b in zip(vals[:-1], vals[1:]))
    per_frame = total / (frame_num - 1)
    seq: list[float] = []
    for a, b in zip(vals[:-1], vals[1:]):
        if b == a or per_frame == 0:
            continue
        step = per_frame * abs(b - a) / (b - a)
        seq += list(np.arange(a, b, step))
    if not seq:
        seq = [vals[0]]
    seq = seq[:frame_num] + [seq[-1]] * max(0, frame_num - len(seq))
    return np.asarray(seq, dtype=np.float64)


@dataclass(frozen=True)
class RenderInputs:
    """Per-frame MappingNet inputs.

    Attributes:
        source: (coeff_nc, 27) float32 window of the source coefficients.
        target: (T, coeff_nc, 27) float32 windows, one per frame.
        yaw, pitch, roll: (T,) free-view degrees, or None (use the predicted angles).
    """

    source: np.ndarray
    target: np.ndarray
    yaw: np.ndarray | None = None
    pitch: np.ndarray | None = None
    roll: np.ndarray | None = None


def render_inputs(
    source_coeff: np.ndarray,
    coeffs: np.ndarray,
    *,
    full: bool = False,
    expression_scale: float = 1.0,
    still: bool = False,
    yaw: Sequence[float] | None = None,
    pitch: Sequence[float] | None = None,
    roll: Sequence[float] | None = None,
) -> RenderInputs:
    """Build MappingNet windows from source and generated coefficients.

    Args:
        source_coeff: (73,) or (1, 73) source ``coeff_3dmm`` (exp || angle || trans ||
            crop s, tx, ty); only the first 70 are used unless ``full``.
        coeffs: (T, >=70) generated coefficients (exp || pose).
        full: Full/extfull modes: 73-channel windows, the source crop parameters are
            appended to every frame (for MappingNet(73)).
        expression_scale: Multiplies the generated expression (first 64).
        still: Copy the source pose (and crop parameters) into every frame.
        yaw, pitch, roll: Free-view degree lists (see :func:`camera_sequence`).

    Returns:
        A :class:`RenderInputs`.
    """
    src = np.asarray(source_coeff, np.float32).reshape(1, -1)
    nc = 73 if full else 70
    if src.shape[1] < nc:
        raise ValueError(f"source coefficients need {nc} values, got {src.shape[1]}")
    src = src[:, :nc]
    gen = np.array(np.asarray(coeffs, np.float32)[:, :70])
    t = gen.shape[0]
    gen[:, :64] = gen[:, :64] * np.float32(expression_scale)
    if full:
        gen = np.concatenate([gen, np.repeat(src[:, 70:], t, 0)], 1)
    if still:
        gen[:, 64:] = np.repeat(src[:, 64:], t, 0)
    steps = np.arange(-SEMANTIC_RADIUS, SEMANTIC_RADIUS + 1)
    idx = np.clip(np.arange(t)[:, None] + steps[None, :], 0, max(t - 1, 0))
    target = gen[idx].transpose(0, 2, 1).astype(np.float32) if t else np.zeros((0, nc, 27), np.float32)
    source = np.repeat(src, 2 * SEMANTIC_RADIUS + 1, 0).T.astype(np.float32)
    return RenderInputs(
        source=source,
        target=target,
        yaw=None if yaw is None else camera_sequence(yaw, t),
        pitch=None if pitch is None else camera_sequence(pitch, t),
        roll=None if roll is None else camera_sequence(roll, t),
    )
