"""Building blocks shared by the SadTalker face renderer networks (face-vid2vid layout).

Module and parameter names follow the official checkpoints so that ``load_state_dict(strict=True)``
accepts the published ``generator.`` / ``kp_extractor.`` tensors unchanged. Every block is meant for
inference: batch norms run on their stored statistics (call ``.eval()``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def coordinate_grid_3d(depth: int, height: int, width: int, *, dtype: torch.dtype,
                       device: torch.device | str | None = None) -> torch.Tensor:
    """A (D, H, W, 3) grid of (x, y, z) coordinates spanning [-1, 1] on each axis.

    x runs along W, y along H and z along D, as ``grid_sample`` expects.
    """

    def axis(n: int) -> torch.Tensor:
        return 2 * (torch.arange(n, device=device).to(dtype) / (n - 1)) - 1

    zz, yy, xx = torch.meshgrid(axis(depth), axis(height), axis(width), indexing="ij")
    return torch.stack([xx, yy, zz], dim=-1)


def gaussian_heatmaps(kp: torch.Tensor, spatial: tuple[int, int, int], variance: float) -> torch.Tensor:
    """Unnormalised isotropic Gaussians around keypoints.

    Args:
        kp: (B, K, 3) keypoints in grid coordinates.
        spatial: (D, H, W) of the heatmap.
        variance: the Gaussian variance.

    Returns:
        (B, K, D, H, W) heatmaps ``exp(-0.5 * |grid - kp|^2 / variance)``.
    """
    grid = coordinate_grid_3d(*spatial, dtype=kp.dtype, device=kp.device)
    diff = grid[None, None] - kp[:, :, None, None, None, :]
    return torch.exp(-0.5 * (diff ** 2).sum(-1) / variance)


class DownBlock2d(nn.Module):
    """conv3x3 -> BN -> ReLU -> 2x2 average pool."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel_size=3, padding=1)
        self.norm = nn.BatchNorm2d(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(F.relu(self.norm(self.conv(x))), 2)


class DownBlock3d(nn.Module):
    """conv3x3x3 -> BN -> ReLU -> (1, 2, 2) average pool."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv = nn.Conv3d(in_ch, out_ch, kernel_size=3, padding=1)
        self.norm = nn.BatchNorm3d(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool3d(F.relu(self.norm(self.conv(x))), (1, 2, 2))


class UpBlock3d(nn.Module):
    """nearest (1, 2, 2) upsample -> conv3x3x3 -> BN -> ReLU."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv = nn.Conv3d(in_ch, out_ch, kernel_size=3, padding=1)
        self.norm = nn.BatchNorm3d(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=(1, 2, 2), mode="nearest")
        return F.relu(self.norm(self.conv(x)))


class SameBlock2d(nn.Module):
    """conv3x3 -> BN -> ReLU (or LeakyReLU 0.01), resolution kept."""

    def __init__(self, in_ch: int, out_ch: int, *, lrelu: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel_size=3, padding=1)
        self.norm = nn.BatchNorm2d(out_ch)
        self.lrelu = lrelu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(self.conv(x))
        return F.leaky_relu(x, 0.01) if self.lrelu else F.relu(x)


class ResBlock3d(nn.Module):
    """Pre-activation residual block: (BN -> ReLU -> conv3d) twice, plus the input."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv3d(channels, channels, kernel_size=3, padding=1)
        self.conv2 = nn.Conv3d(channels, channels, kernel_size=3, padding=1)
        self.norm1 = nn.BatchNorm3d(channels)
        self.norm2 = nn.BatchNorm3d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.relu(self.norm1(x)))
        out = self.conv2(F.relu(self.norm2(out)))
        return out + x
