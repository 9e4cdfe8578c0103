"""Head pose + expression -> driving 3D keypoints (SadTalker's ``keypoint_transformation``).

The one home of the keypoint transform:

kp = R(pitch, yaw, roll) · kp_canonical + t + exp, where the angles come from 66-bin softmax
logits (degrees = sum(softmax · bin) · 3 - 99) or are given in degrees (free view), radians use
3.14 (as upstream, not pi), R = Rx(pitch) · Ry(yaw) · Rz(roll), and t[:, 0] and t[:, 2] are zeroed
(on a copy: upstream zeroes the caller's tensor in place).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F

__all__ = ["bins_to_degrees", "keypoints_from_mapping", "rotation_matrix", "transform_keypoints"]


def bins_to_degrees(logits: torch.Tensor) -> torch.Tensor:
    """(B, 66) angle-bin logits -> (B,) degrees: sum(softmax * idx) * 3 - 99."""
    idx = torch.arange(logits.shape[1], dtype=logits.dtype, device=logits.device)
    return torch.sum(F.softmax(logits, dim=1) * idx, 1) * 3 - 99


def rotation_matrix(yaw: torch.Tensor, pitch: torch.Tensor, roll: torch.Tensor) -> torch.Tensor:
    """(B,) angles in degrees -> (B, 3, 3) rotation Rx(pitch) · Ry(yaw) · Rz(roll), with upstream's 3.14."""
    yaw = (yaw / 180 * 3.14).unsqueeze(1)
    pitch = (pitch / 180 * 3.14).unsqueeze(1)
    roll = (roll / 180 * 3.14).unsqueeze(1)
    one, zero = torch.ones_like(pitch), torch.zeros_like(pitch)
    rx = torch.cat([one, zero, zero, zero, torch.cos(pitch), -torch.sin(pitch),
                    zero, torch.sin(pitch), torch.cos(pitch)], dim=1).view(-1, 3, 3)
    ry = torch.cat([torch.cos(yaw), zero, torch.sin(yaw), zero, one, zero,
                    -torch.sin(yaw), zero, torch.cos(yaw)], dim=1).view(-1, 3, 3)
    rz = torch.cat([torch.cos(roll), -torch.sin(roll), zero, torch.sin(roll), torch.cos(roll), zero,
                    zero, zero, one], dim=1).view(-1, 3, 3)
    return torch.einsum("bij,bjk,bkm->bim", rx, ry, rz)


def transform_keypoints(kp_canonical: torch.Tensor, yaw: torch.Tensor, pitch: torch.Tensor,
                        roll: torch.Tensor, t: torch.Tensor, exp: torch.Tensor, *,
                        yaw_deg: torch.Tensor | None = None, pitch_deg: torch.Tensor | None = None,
                        roll_deg: torch.Tensor | None = None) -> torch.Tensor:
    """Posed keypoints.

    Args:
        kp_canonical: (B, K, 3) (batch 1 broadcasts).
        yaw, pitch, roll: (B, 66) bin logits from the mapping net.
        t: (B, 3) translation; only t[:, 1] is used (upstream zeroes x and z). Not modified.
        exp: (B, 3K) expression offsets.
        yaw_deg, pitch_deg, roll_deg: optional (B,) degree overrides (free view).

    Returns:
        (B, K, 3) keypoints.
    """
    y = bins_to_degrees(yaw) if yaw_deg is None else yaw_deg.to(kp_canonical)
    p = bins_to_degrees(pitch) if pitch_deg is None else pitch_deg.to(kp_canonical)
    r = bins_to_degrees(roll) if roll_deg is None else roll_deg.to(kp_canonical)
    rot = rotation_matrix(y, p, r)
    b = rot.shape[0]
    kp = kp_canonical.expand(b, -1, -1) if kp_canonical.shape[0] != b else kp_canonical
    rotated = torch.einsum("bmp,bkp->bkm", rot, kp)
    t = t.clone()
    t[:, 0] = t[:, 0] * 0
    t[:, 2] = t[:, 2] * 0
    return rotated + t.unsqueeze(1) + exp.reshape(b, -1, 3)


def keypoints_from_mapping(kp_canonical: torch.Tensor, he: Mapping[str, torch.Tensor], **degrees: torch.Tensor
                           ) -> torch.Tensor:
    """:func:`transform_keypoints` for a MappingNet output dict (``yaw``, ``pitch``, ``roll``, ``t``,
    ``exp``); ``degrees`` are the optional ``yaw_deg``/``pitch_deg``/``roll_deg`` overrides."""
    return transform_keypoints(kp_canonical, he["yaw"], he["pitch"], he["roll"], he["t"], he["exp"], **degrees)
