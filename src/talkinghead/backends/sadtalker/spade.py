"""SPADE decoder of the SadTalker face renderer (``generator.decoder.*`` tensors).

The residual blocks use spectrally normalised convolutions. The official checkpoints store them the
way ``torch.nn.utils.spectral_norm`` does (``weight_orig``, ``weight_u``, ``weight_v``). At inference
upstream divides ``weight_orig`` by ``sigma = u · (W v)`` with the stored vectors and runs no power
iteration; :class:`SNConv2d` does exactly that, without hooks, and can cache the divided weight.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SNConv2d(nn.Module):
    """A Conv2d whose weight is ``weight_orig / (weight_u · (W weight_v))`` (inference only).

    Args:
        in_ch, out_ch, kernel_size, padding: as for ``nn.Conv2d``.
        bias: whether the conv has a bias.
    """

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, *, padding: int = 0,
                 bias: bool = True) -> None:
        super().__init__()
        self.weight_orig = nn.Parameter(torch.empty(out_ch, in_ch, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.empty(out_ch)) if bias else None
        self.register_buffer("weight_u", torch.empty(out_ch))
        self.register_buffer("weight_v", torch.empty(in_ch * kernel_size * kernel_size))
        self.padding = padding
        self._cached: torch.Tensor | None = None
        self.cache_weight = False

    def _load_from_state_dict(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        self._cached = None
        super()._load_from_state_dict(*args, **kwargs)

    def normalised_weight(self) -> torch.Tensor:
        """The effective conv weight, computed from the stored u, v (no power iteration)."""
        w = self.weight_orig
        sigma = torch.dot(self.weight_u, torch.mv(w.reshape(w.shape[0], -1), self.weight_v))
        return w / sigma

    def _apply(self, fn, *args, **kwargs):  # type: ignore[no-untyped-def]
        self._cached = None
        return super()._apply(fn, *args, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.cache_weight and not self.training:
            if self._cached is None:
                with torch.no_grad():
                    self._cached = self.normalised_weight()
            weight = self._cached
        else:
            weight = self.normalised_weight()
        return F.conv2d(x, weight, self.bias, padding=self.padding)


class SPADE(nn.Module):
    """Spatially-adaptive normalisation: ``instance_norm(x) * (1 + gamma(seg)) + beta(seg)``."""

    def __init__(self, norm_nc: int, label_nc: int, hidden: int = 128) -> None:
        super().__init__()
        self.mlp_shared = nn.Sequential(nn.Conv2d(label_nc, hidden, 3, padding=1), nn.ReLU())
        self.mlp_gamma = nn.Conv2d(hidden, norm_nc, 3, padding=1)
        self.mlp_beta = nn.Conv2d(hidden, norm_nc, 3, padding=1)

    def forward(self, x: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        normalized = F.instance_norm(x, eps=1e-5)
        if seg.shape[2:] != x.shape[2:]:
            seg = F.interpolate(seg, size=x.shape[2:], mode="nearest")
        actv = self.mlp_shared(seg)
        return normalized * (1 + self.mlp_gamma(actv)) + self.mlp_beta(actv)


class SPADEResnetBlock(nn.Module):
    """Two SPADE-conv stages with a (learned when fin != fout) shortcut; LeakyReLU 0.2."""

    def __init__(self, fin: int, fout: int, label_nc: int, hidden: int = 128) -> None:
        super().__init__()
        self.learned_shortcut = fin != fout
        fmid = min(fin, fout)
        self.conv_0 = SNConv2d(fin, fmid, 3, padding=1)
        self.conv_1 = SNConv2d(fmid, fout, 3, padding=1)
        if self.learned_shortcut:
            self.conv_s = SNConv2d(fin, fout, 1, bias=False)
        self.norm_0 = SPADE(fin, label_nc, hidden)
        self.norm_1 = SPADE(fmid, label_nc, hidden)
        if self.learned_shortcut:
            self.norm_s = SPADE(fin, label_nc, hidden)

    def forward(self, x: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        x_s = self.conv_s(self.norm_s(x, seg)) if self.learned_shortcut else x
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, seg), 0.2))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, seg), 0.2))
        return x_s + dx


class SPADEDecoder(nn.Module):
    """256-channel 64x64 feature -> (B, 3, 4*64, 4*64) image in [0, 1].

    Args:
        ic, oc, label_nc: input, last-block and segmentation channels (256, 64, 256).
        hidden: SPADE hidden channels (128).
        num_middle: SPADE residual blocks at the input resolution (6).
    """

    def __init__(self, ic: int = 256, oc: int = 64, label_nc: int = 256, *, hidden: int = 128,
                 num_middle: int = 6) -> None:
        super().__init__()
        self.num_middle = num_middle
        self.fc = nn.Conv2d(ic, 2 * ic, 3, padding=1)
        for i in range(num_middle):
            self.add_module(f"G_middle_{i}", SPADEResnetBlock(2 * ic, 2 * ic, label_nc, hidden))
        self.up_0 = SPADEResnetBlock(2 * ic, ic, label_nc, hidden)
        self.up_1 = SPADEResnetBlock(ic, oc, label_nc, hidden)
        self.conv_img = nn.Conv2d(oc, 3, 3, padding=1)

    def set_weight_cache(self, enabled: bool) -> None:
        """Cache the spectrally normalised weights (they are constant at inference)."""
        for m in self.modules():
            if isinstance(m, SNConv2d):
                m.cache_weight = enabled
                m._cached = None

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        seg = feature
        x = self.fc(feature)
        for i in range(self.num_middle):
            x = getattr(self, f"G_middle_{i}")(x, seg)
        x = self.up_0(F.interpolate(x, scale_factor=2, mode="nearest"), seg)
        x = self.up_1(F.interpolate(x, scale_factor=2, mode="nearest"), seg)
        return torch.sigmoid(self.conv_img(F.leaky_relu(x, 0.2)))
