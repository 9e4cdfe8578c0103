"""Canonical 3D keypoint detector of the SadTalker face renderer (``kp_extractor.*`` tensors).

The detector runs once per portrait: an anti-aliased 1/4 downscale, a 2D→3D hourglass, a 3D conv
to 15 heatmaps, a temperature softmax and the expectation of the (x, y, z) grid under each heatmap.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .layers import DownBlock2d, UpBlock3d, coordinate_grid_3d


def gaussian_kernel(channels: int, scale: float) -> torch.Tensor:
    """The fixed depthwise Gaussian used before subsampling by ``1/scale``.

    sigma = (1/scale - 1) / 2 and size = 2 * round(4 * sigma) + 1 (13x13 for scale 0.25); the kernel
    sums to one. Returns a (channels, 1, k, k) float32 tensor.
    """
    sigma = (1 / scale - 1) / 2
    size = 2 * round(sigma * 4) + 1
    coords = torch.arange(size, dtype=torch.float32)
    mean = (size - 1) / 2
    g = torch.exp(-((coords - mean) ** 2) / (2 * sigma ** 2))
    kernel = g[:, None] * g[None, :]
    kernel = kernel / kernel.sum()
    return kernel.view(1, 1, size, size).repeat(channels, 1, 1, 1)


class AntiAliasDownsample(nn.Module):
    """Gaussian blur (zero padded) followed by taking every ``1/scale``-th pixel.

    The kernel lives in the persistent buffer ``weight`` (state key ``down.weight``), as in the
    official checkpoints.
    """

    def __init__(self, channels: int, scale: float) -> None:
        super().__init__()
        kernel = gaussian_kernel(channels, scale)
        size = kernel.shape[-1]
        self.pad_before = size // 2
        self.pad_after = self.pad_before - 1 if size % 2 == 0 else self.pad_before
        self.register_buffer("weight", kernel)
        self.groups = channels
        self.step = int(1 / scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.pad_before, self.pad_after
        x = F.conv2d(F.pad(x, (a, b, a, b)), self.weight, groups=self.groups)
        return x[:, :, :: self.step, :: self.step]


class KPHourglass(nn.Module):
    """2D encoder (5 down blocks) -> 1x1 conv -> reshape to 3D -> 3D decoder (5 up blocks)."""

    def __init__(self, *, block_expansion: int = 32, in_features: int = 3, max_features: int = 1024,
                 reshape_features: int = 16384, reshape_depth: int = 16, num_blocks: int = 5) -> None:
        super().__init__()
        self.down_blocks = nn.Sequential()
        for i in range(num_blocks):
            cin = in_features if i == 0 else min(max_features, block_expansion * 2 ** i)
            cout = min(max_features, block_expansion * 2 ** (i + 1))
            self.down_blocks.add_module(f"down{i}", DownBlock2d(cin, cout))
        self.conv = nn.Conv2d(min(max_features, block_expansion * 2 ** num_blocks), reshape_features, 1)
        self.up_blocks = nn.Sequential()
        cout = 0
        for i in range(num_blocks):
            cin = min(max_features, block_expansion * 2 ** (num_blocks - i))
            cout = min(max_features, block_expansion * 2 ** (num_blocks - i - 1))
            self.up_blocks.add_module(f"up{i}", UpBlock3d(cin, cout))
        self.reshape_depth = reshape_depth
        self.out_filters = cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(self.down_blocks(x))
        b, c, h, w = out.shape
        out = out.view(b, c // self.reshape_depth, self.reshape_depth, h, w)
        return self.up_blocks(out)


class KPDetector(nn.Module):
    """Canonical keypoints of a source image (no jacobians, as in SadTalker).

    Args:
        num_kp: number of keypoints (15).
        image_channel: input channels (3).
        block_expansion, max_features, num_blocks, reshape_channel, reshape_depth: hourglass shape.
        temperature: softmax temperature of the heatmaps (0.1).
        scale_factor: input downscale before the hourglass (0.25).
    """

    def __init__(self, *, num_kp: int = 15, image_channel: int = 3, block_expansion: int = 32,
                 max_features: int = 1024, num_blocks: int = 5, reshape_channel: int = 16384,
                 reshape_depth: int = 16, temperature: float = 0.1, scale_factor: float = 0.25) -> None:
        super().__init__()
        self.predictor = KPHourglass(block_expansion=block_expansion, in_features=image_channel,
                                     max_features=max_features, reshape_features=reshape_channel,
                                     reshape_depth=reshape_depth, num_blocks=num_blocks)
        self.kp = nn.Conv3d(self.predictor.out_filters, num_kp, kernel_size=3, padding=1)
        self.temperature = temperature
        self.scale_factor = scale_factor
        if scale_factor != 1:
            self.down = AntiAliasDownsample(image_channel, scale_factor)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Map (B, 3, S, S) images in [0, 1] to (B, K, 3) canonical keypoints in [-1, 1]."""
        if self.scale_factor != 1:
            image = self.down(image)
        logits = self.kp(self.predictor(image))
        b, k, d, h, w = logits.shape
        heat = F.softmax(logits.view(b, k, -1) / self.temperature, dim=2).view(b, k, d, h, w, 1)
        grid = coordinate_grid_3d(d, h, w, dtype=heat.dtype, device=heat.device)
        return (heat * grid).sum(dim=(2, 3, 4))


class ResBottleneck(nn.Module):
    """Bottleneck residual block of the (unused) head-pose estimator; kept for strict key checks."""

    def __init__(self, features: int, stride: int) -> None:
        super().__init__()
        q = features // 4
        self.conv1 = nn.Conv2d(features, q, 1)
        self.conv2 = nn.Conv2d(q, q, 3, padding=1, stride=stride)
        self.conv3 = nn.Conv2d(q, features, 1)
        self.norm1 = nn.BatchNorm2d(q)
        self.norm2 = nn.BatchNorm2d(q)
        self.norm3 = nn.BatchNorm2d(features)
        if stride != 1:
            self.skip = nn.Conv2d(features, features, 1, stride=stride)
            self.norm4 = nn.BatchNorm2d(features)


def _bottlenecks(prefix: str, features: int, count: int) -> nn.Sequential:
    seq = nn.Sequential()
    for i in range(count):
        seq.add_module(f"{prefix}_{i}", ResBottleneck(features, 1))
    return seq


class HEEstimator(nn.Module):
    """Parameter layout of face-vid2vid's head-pose/expression estimator (``he_estimator`` section).

    SadTalker loads this network from the legacy ``facevid2vid_00189-model.pth.tar`` but never calls
    it. We only build it (on the ``meta`` device) to check that a legacy file's section has exactly
    the expected keys and shapes; its tensors are then dropped. It has no ``forward``.
    """

    def __init__(self, *, block_expansion: int = 64, image_channel: int = 3, num_kp: int = 15,
                 num_bins: int = 66) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(image_channel, block_expansion, 7, padding=3, stride=2)
        self.norm1 = nn.BatchNorm2d(block_expansion)
        self.conv2 = nn.Conv2d(block_expansion, 256, 1)
        self.norm2 = nn.BatchNorm2d(256)
        self.block1 = _bottlenecks('b1', 256, 3)
        self.conv3 = nn.Conv2d(256, 512, 1)
        self.norm3 = nn.BatchNorm2d(512)
        self.block2 = ResBottleneck(512, 2)
        self.block3 = _bottlenecks('b3', 512, 3)
        self.conv4 = nn.Conv2d(512, 1024, 1)
        self.norm4 = nn.BatchNorm2d(1024)
        self.block4 = ResBottleneck(1024, 2)
        self.block5 = _bottlenecks('b5', 1024, 5)
        self.conv5 = nn.Conv2d(1024, 2048, 1)
        self.norm5 = nn.BatchNorm2d(2048)
        self.block6 = ResBottleneck(2048, 2)
        self.block7 = _bottlenecks('b7', 2048, 2)
        self.fc_roll = nn.Linear(2048, num_bins)
        self.fc_pitch = nn.Linear(2048, num_bins)
        self.fc_yaw = nn.Linear(2048, num_bins)
        self.fc_t = nn.Linear(2048, 3)
        self.fc_exp = nn.Linear(2048, 3 * num_kp)


def expected_shapes(module: nn.Module) -> dict[str, tuple[int, ...]]:
    """State-dict key -> shape of a module (works for modules built on the meta device)."""
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


