"""Dense motion estimation of the SadTalker face renderer (``generator.dense_motion_network.*``).

From source and driving 3D keypoints it builds 16 candidate flows (identity + one per keypoint),
warps a compressed copy of the source feature volume with each, feeds warped volumes and keypoint
heatmap differences to a 3D hourglass, and predicts per-voxel soft masks (softmax; values below 1e-3
set to zero and *not* renormalised, as upstream) plus a 2D occlusion map.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .layers import DownBlock3d, UpBlock3d, coordinate_grid_3d, gaussian_heatmaps


class HourglassEncoder(nn.Module):
    def __init__(self, block_expansion: int, in_features: int, num_blocks: int, max_features: int) -> None:
        super().__init__()
        self.down_blocks = nn.ModuleList(
            DownBlock3d(in_features if i == 0 else min(max_features, block_expansion * 2 ** i),
                        min(max_features, block_expansion * 2 ** (i + 1)))
            for i in range(num_blocks))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = [x]
        for block in self.down_blocks:
            outs.append(block(outs[-1]))
        return outs


class HourglassDecoder(nn.Module):
    def __init__(self, block_expansion: int, in_features: int, num_blocks: int, max_features: int) -> None:
        super().__init__()
        blocks = []
        for i in reversed(range(num_blocks)):
            cin = (1 if i == num_blocks - 1 else 2) * min(max_features, block_expansion * 2 ** (i + 1))
            blocks.append(UpBlock3d(cin, min(max_features, block_expansion * 2 ** i)))
        self.up_blocks = nn.ModuleList(blocks)
        self.out_filters = block_expansion + in_features
        self.conv = nn.Conv3d(self.out_filters, self.out_filters, kernel_size=3, padding=1)
        self.norm = nn.BatchNorm3d(self.out_filters)

    def forward(self, skips: list[torch.Tensor]) -> torch.Tensor:
        skips = list(skips)
        out = skips.pop()
        for block in self.up_blocks:
            out = torch.cat([block(out), skips.pop()], dim=1)
        return F.relu(self.norm(self.conv(out)))


class Hourglass3d(nn.Module):
    def __init__(self, block_expansion: int, in_features: int, num_blocks: int, max_features: int) -> None:
        super().__init__()
        self.encoder = HourglassEncoder(block_expansion, in_features, num_blocks, max_features)
        self.decoder = HourglassDecoder(block_expansion, in_features, num_blocks, max_features)
        self.out_filters = self.decoder.out_filters

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


class DenseMotionNetwork(nn.Module):
    """Predicts the dense deformation and occlusion map from keypoints.

    Args:
        num_kp: keypoints (15).
        feature_channel: channels of the source feature volume (32).
        block_expansion, num_blocks, max_features: hourglass shape (32, 5, 1024).
        reshape_depth: depth of the feature volume (16).
        compress: channels after the 1x1x1 compression (4).
        estimate_occlusion_map: build the occlusion head (True in SadTalker).
        head_kernel: kernel size of the mask (3D) and occlusion (2D) heads (7).
    """

    def __init__(self, *, num_kp: int = 15, feature_channel: int = 32, block_expansion: int = 32,
                 num_blocks: int = 5, max_features: int = 1024, reshape_depth: int = 16,
                 compress: int = 4, estimate_occlusion_map: bool = True, head_kernel: int = 7) -> None:
        super().__init__()
        self.hourglass = Hourglass3d(block_expansion, (num_kp + 1) * (compress + 1), num_blocks, max_features)
        pad = head_kernel // 2
        self.mask = nn.Conv3d(self.hourglass.out_filters, num_kp + 1, kernel_size=head_kernel, padding=pad)
        self.compress = nn.Conv3d(feature_channel, compress, kernel_size=1)
        self.norm = nn.BatchNorm3d(compress)
        self.occlusion = (nn.Conv2d(self.hourglass.out_filters * reshape_depth, 1, kernel_size=head_kernel, padding=pad)
                          if estimate_occlusion_map else None)
        self.num_kp = num_kp

    def compress_feature(self, feature: torch.Tensor) -> torch.Tensor:
        """The source-only part: 1x1x1 conv -> BN -> ReLU (cacheable per portrait)."""
        return F.relu(self.norm(self.compress(feature)))

    def forward(self, feature: torch.Tensor, kp_driving: torch.Tensor, kp_source: torch.Tensor, *,
                compressed: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Return ``(deformation (B, D, H, W, 3), occlusion (B, 1, H, W) or None)``.

        Args:
            feature: (B, C, D, H, W) source feature volume (only its shape is used if ``compressed``
                is given).
            kp_driving, kp_source: (B, K, 3) keypoints.
            compressed: a precomputed ``compress_feature(feature)``, possibly with batch 1.
        """
        b, _, d, h, w = feature.shape
        if compressed is None:
            compressed = self.compress_feature(feature)
        if compressed.shape[0] != b:
            compressed = compressed.expand(b, -1, -1, -1, -1)
        k1 = self.num_kp + 1
        grid = coordinate_grid_3d(d, h, w, dtype=kp_source.dtype, device=kp_source.device)
        grid = grid.view(1, 1, d, h, w, 3)
        to_source = grid - kp_driving.view(b, self.num_kp, 1, 1, 1, 3) + kp_source.view(b, self.num_kp, 1, 1, 1, 3)
        motions = torch.cat([grid.expand(b, 1, d, h, w, 3), to_source], dim=1)  # (B, K+1, D, H, W, 3)
        c = compressed.shape[1]
        rep = compressed.unsqueeze(1).expand(b, k1, c, d, h, w).reshape(b * k1, c, d, h, w)
        deformed = F.grid_sample(rep, motions.reshape(b * k1, d, h, w, 3).to(rep.dtype), mode="bilinear",
                                 padding_mode="zeros", align_corners=False).view(b, k1, c, d, h, w)
        heat = (gaussian_heatmaps(kp_driving, (d, h, w), 0.01) - gaussian_heatmaps(kp_source, (d, h, w), 0.01))
        heat = torch.cat([heat.new_zeros(b, 1, d, h, w), heat], dim=1).unsqueeze(2).to(deformed.dtype)
        prediction = self.hourglass(torch.cat([heat, deformed], dim=2).view(b, -1, d, h, w))
        mask = F.softmax(self.mask(prediction), dim=1).unsqueeze(2)
        mask = torch.where(mask < 1e-3, torch.zeros_like(mask), mask)
        deformation = (motions.permute(0, 1, 5, 2, 3, 4).to(mask.dtype) * mask).sum(dim=1)
        deformation = deformation.permute(0, 2, 3, 4, 1)
        occlusion = None
        if self.occlusion is not None:
            occlusion = torch.sigmoid(self.occlusion(prediction.reshape(b, -1, h, w)))
        return deformation, occlusion
