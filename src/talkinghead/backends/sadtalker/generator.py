"""The SadTalker face renderer generator (``generator.*`` tensors): OcclusionAwareSPADEGenerator.

source image -> 2D encoder -> 3D feature volume -> (dense motion from keypoints) warp -> 2D ->
occlusion -> SPADE decoder -> frame. The source-only part (:meth:`encode_source`) does not depend on
the driving keypoints, so it can be computed once per portrait and reused for every frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .dense_motion import DenseMotionNetwork
from .layers import DownBlock2d, ResBlock3d, SameBlock2d
from .spade import SPADEDecoder


@dataclass(frozen=True)
class SourceFeatures:
    """Per-portrait generator state: the 3D feature volume and its compressed copy (batch 1 or B)."""

    volume: torch.Tensor
    compressed: torch.Tensor


class OcclusionAwareSPADEGenerator(nn.Module):
    """Renders a frame from a source image and source/driving keypoints.

    Args:
        image_channel: 3. feature_channel: 32. num_kp: 15.
        block_expansion, max_features, num_down_blocks: 2D encoder shape (64, 512, 2).
        reshape_channel, reshape_depth: 3D volume shape (32, 16).
        num_resblocks: 3D residual blocks (6).
        dense_motion: keyword arguments of :class:`DenseMotionNetwork`.
        decoder: keyword arguments of :class:`SPADEDecoder` (its input and segmentation channels
            are this network's output features, ``block_expansion * 2 ** num_down_blocks``).
    """

    def __init__(self, *, image_channel: int = 3, feature_channel: int = 32, num_kp: int = 15,
                 block_expansion: int = 64, max_features: int = 512, num_down_blocks: int = 2,
                 reshape_channel: int = 32, reshape_depth: int = 16, num_resblocks: int = 6,
                 estimate_occlusion_map: bool = True, dense_motion: dict | None = None,
                 decoder: dict | None = None) -> None:
        super().__init__()
        dm = dict(block_expansion=32, max_features=1024, num_blocks=5, reshape_depth=reshape_depth, compress=4)
        dm.update(dense_motion or {})
        self.dense_motion_network = DenseMotionNetwork(num_kp=num_kp, feature_channel=feature_channel,
                                                       estimate_occlusion_map=estimate_occlusion_map, **dm)
        self.first = SameBlock2d(image_channel, block_expansion)
        self.down_blocks = nn.ModuleList(
            DownBlock2d(min(max_features, block_expansion * 2 ** i), min(max_features, block_expansion * 2 ** (i + 1)))
            for i in range(num_down_blocks))
        self.second = nn.Conv2d(min(max_features, block_expansion * 2 ** num_down_blocks), max_features, 1)
        self.reshape_channel = reshape_channel
        self.reshape_depth = reshape_depth
        self.resblocks_3d = nn.Sequential()
        for i in range(num_resblocks):
            self.resblocks_3d.add_module(f"3dr{i}", ResBlock3d(reshape_channel))
        out_features = block_expansion * 2 ** num_down_blocks
        self.third = SameBlock2d(max_features, out_features, lrelu=True)
        self.fourth = nn.Conv2d(out_features, out_features, 1)
        self.decoder = SPADEDecoder(**{"ic": out_features, "label_nc": out_features, **(decoder or {})})

    def encode_source(self, source: torch.Tensor) -> SourceFeatures:
        """The keypoint-independent part for (B, 3, S, S) source images in [0, 1]."""
        out = self.first(source)
        for block in self.down_blocks:
            out = block(out)
        out = self.second(out)
        b, _, h, w = out.shape
        volume = self.resblocks_3d(out.view(b, self.reshape_channel, self.reshape_depth, h, w))
        return SourceFeatures(volume, self.dense_motion_network.compress_feature(volume))

    def render(self, src: SourceFeatures, kp_source: torch.Tensor, kp_driving: torch.Tensor) -> torch.Tensor:
        """Frames (B, 3, S, S) in [0, 1] for (B, K, 3) keypoints; ``src`` may have batch 1."""
        b = kp_driving.shape[0]
        volume = src.volume if src.volume.shape[0] == b else src.volume.expand(b, -1, -1, -1, -1)
        deformation, occlusion = self.dense_motion_network(volume, kp_driving, kp_source,
                                                           compressed=src.compressed)
        out = F.grid_sample(volume, deformation.to(volume.dtype), mode="bilinear", padding_mode="zeros",
                            align_corners=False)
        out = self.fourth(self.third(out.reshape(b, -1, out.shape[3], out.shape[4])))
        if occlusion is not None:
            if occlusion.shape[2:] != out.shape[2:]:
                occlusion = F.interpolate(occlusion, size=out.shape[2:], mode="bilinear")
            out = out * occlusion.to(out.dtype)
        return self.decoder(out)

    def forward(self, source: torch.Tensor, kp_source: torch.Tensor, kp_driving: torch.Tensor) -> torch.Tensor:
        """Upstream-shaped call: encode the source and render in one go."""
        return self.render(self.encode_source(source), kp_source, kp_driving)
