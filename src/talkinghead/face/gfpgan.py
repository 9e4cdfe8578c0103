"""GFPGAN v1.4 face restoration network (``GFPGANv1Clean``) with the official state-dict names.

The network is a U-Net encoder whose bottleneck is mapped to 16 StyleGAN2 latents, plus a
StyleGAN2 decoder (the "clean" variant: no custom CUDA ops) whose first conv of every level is
modulated by spatial feature transforms (SFT) computed from the U-Net's upsampling path.
Configuration of the released ``GFPGANv1.4.pth``: output 512, channel multiplier 2, narrow 1,
SFT on half of the channels, one latent per decoder layer, the encoder output used directly as
latents. The decoder's 8-layer style MLP is part of the checkpoint and is loaded, but it is never
run (the latents do not go through it), exactly as upstream.

Only 512x512 inputs are accepted: the bottleneck must be 4x4 for the final linear layer. The
network is deterministic by default (``noise="stored"`` uses the noise maps saved in the
checkpoint); upstream draws fresh noise every call, which makes video frames flicker.

This module imports torch at import time; backends import it inside ``load()``.
"""

from __future__ import annotations

import io
import logging
import math
import os
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..errors import ModelLoadError
from ..weights import catalog, missing_file_error

log = logging.getLogger(__name__)

__all__ = [
    "GFPGAN_URL",
    "GFPGAN_FILENAME",
    "NoiseMode",
    "GFPGANv1Clean",
    "load_gfpgan",
    "read_gfpgan_state",
    "to_input",
    "to_uint8",
]

GFPGAN_WEIGHTS = catalog.entry("gfpgan-v1.4")
GFPGAN_FILENAME = GFPGAN_WEIGHTS.filename
GFPGAN_URL = GFPGAN_WEIGHTS.urls[0]

NoiseMode = Literal["stored", "seeded", "random"]
NOISE_MODES: tuple[str, ...] = ("stored", "seeded", "random")

_SLOPE = 0.2


def _lrelu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, negative_slope=_SLOPE)


def _resize2(x: torch.Tensor, factor: float) -> torch.Tensor:
    return F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)


# --------------------------------------------------------------------------------------------
# U-Net encoder / decoder pieces
# --------------------------------------------------------------------------------------------


class _ResampleBlock(nn.Module):
    """Residual block that halves or doubles the resolution (bilinear), ``conv1/conv2/skip``."""

    def __init__(self, cin: int, cout: int, factor: float) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cin, 3, 1, 1)
        self.conv2 = nn.Conv2d(cin, cout, 3, 1, 1)
        self.skip = nn.Conv2d(cin, cout, 1, bias=False)
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = _resize2(_lrelu(self.conv1(x)), self.factor)
        h = _lrelu(self.conv2(h))
        return h + self.skip(_resize2(x, self.factor))


def _sft_branch(ch: int) -> nn.Sequential:
    # indices 0 and 2 hold the convolutions, as in the checkpoint
    return nn.Sequential(nn.Conv2d(ch, ch, 3, 1, 1), nn.LeakyReLU(_SLOPE), nn.Conv2d(ch, ch, 3, 1, 1))


# --------------------------------------------------------------------------------------------
# StyleGAN2 (clean) decoder pieces
# --------------------------------------------------------------------------------------------


class _ModulatedConv(nn.Module):
    """Weight-modulated convolution run as a grouped conv (one group per sample)."""

    def __init__(self, cin: int, cout: int, k: int, style_dim: int, *, demodulate: bool, upsample: bool) -> None:
        super().__init__()
        self.modulation = nn.Linear(style_dim, cin)
        self.weight = nn.Parameter(torch.zeros(1, cout, cin, k, k))
        self.cin, self.cout, self.k = cin, cout, k
        self.demodulate, self.upsample = demodulate, upsample

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        s = self.modulation(w).view(b, 1, self.cin, 1, 1)
        weight = self.weight * s
        if self.demodulate:
            d = torch.rsqrt(weight.pow(2).sum([2, 3, 4]) + 1e-8)
            weight = weight * d.view(b, self.cout, 1, 1, 1)
        weight = weight.view(b * self.cout, self.cin, self.k, self.k)
        if self.upsample:
            x = _resize2(x, 2)
        h, wd = x.shape[2:]
        out = F.conv2d(x.reshape(1, b * self.cin, h, wd), weight, padding=self.k // 2, groups=b)
        return out.view(b, self.cout, *out.shape[2:])


class _StyleConv(nn.Module):
    """Modulated 3x3 conv, times sqrt(2), plus scaled noise and bias, LeakyReLU(0.2)."""

    def __init__(self, cin: int, cout: int, style_dim: int, *, upsample: bool) -> None:
        super().__init__()
        self.modulated_conv = _ModulatedConv(cin, cout, 3, style_dim, demodulate=True, upsample=upsample)
        self.weight = nn.Parameter(torch.zeros(1))  # noise strength
        self.bias = nn.Parameter(torch.zeros(1, cout, 1, 1))

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
        out = self.modulated_conv(x, w) * 2**0.5
        if noise is None:
            noise = out.new_empty(out.shape[0], 1, *out.shape[2:]).normal_()
        out = out + self.weight * noise
        return _lrelu(out + self.bias)


class _ToRGB(nn.Module):
    """Modulated 1x1 conv to RGB (no demodulation), bias, plus the upsampled previous RGB."""

    def __init__(self, cin: int, style_dim: int, *, upsample: bool) -> None:
        super().__init__()
        self.modulated_conv = _ModulatedConv(cin, 3, 1, style_dim, demodulate=False, upsample=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))
        self.upsample = upsample

    def forward(self, x: torch.Tensor, w: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        out = self.modulated_conv(x, w) + self.bias
        if skip is not None:
            out = out + (_resize2(skip, 2) if self.upsample else skip)
        return out


class _Const(nn.Module):
    def __init__(self, ch: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1, ch, 4, 4))


class _StyleMLP(nn.Sequential):
    """The 8-layer mapping network: kept for the checkpoint, never run (latents come from the encoder)."""

    def __init__(self, dim: int, layers: int) -> None:
        mods: list[nn.Module] = [nn.Identity()]  # index 0 held the (parameter-free) style normalisation
        for _ in range(layers):
            mods += [nn.Linear(dim, dim), nn.LeakyReLU(_SLOPE)]
        super().__init__(*mods)


class _Decoder(nn.Module):
    """StyleGAN2 clean generator with SFT conditions (``stylegan_decoder.*``)."""

    def __init__(self, out_size: int, style_dim: int, channels: Mapping[int, int], num_mlp: int) -> None:
        super().__init__()
        self.log_size = int(math.log2(out_size))
        self.num_layers = (self.log_size - 2) * 2 + 1
        self.style_mlp = _StyleMLP(style_dim, num_mlp)
        c4 = channels[4]
        self.constant_input = _Const(c4)
        self.style_conv1 = _StyleConv(c4, c4, style_dim, upsample=False)
        self.to_rgb1 = _ToRGB(c4, style_dim, upsample=False)
        self.style_convs = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        self.noises = nn.Module()
        for i in range(self.num_layers):
            r = 2 ** ((i + 5) // 2)
            self.noises.register_buffer(f"noise{i}", torch.zeros(1, 1, r, r))
        cin = c4
        for lvl in range(3, self.log_size + 1):
            cout = channels[2**lvl]
            self.style_convs.append(_StyleConv(cin, cout, style_dim, upsample=True))
            self.style_convs.append(_StyleConv(cout, cout, style_dim, upsample=False))
            self.to_rgbs.append(_ToRGB(cout, style_dim, upsample=True))
            cin = cout

    def noise_maps(self, mode: str, batch: int, seed: int, levels: int) -> list[torch.Tensor | None]:
        """Noise for the first ``1 + 2*levels`` style convs under the given mode."""
        n = 1 + 2 * levels
        if mode == "stored":
            return [getattr(self.noises, f"noise{i}") for i in range(n)]
        if mode == "random":
            return [None] * n
        gen = torch.Generator().manual_seed(seed)
        ref = self.noises.noise0
        maps = []
        for i in range(n):
            r = 2 ** ((i + 5) // 2)
            maps.append(torch.randn(1, 1, r, r, generator=gen).to(device=ref.device, dtype=ref.dtype))
        return maps

    def forward(
        self,
        latents: torch.Tensor,
        conditions: list[torch.Tensor],
        noise: list[torch.Tensor | None],
        levels: int,
        sft_half: bool,
    ) -> torch.Tensor:
        b = latents.shape[0]
        out = self.constant_input.weight.expand(b, -1, -1, -1)
        out = self.style_conv1(out, latents[:, 0], noise[0])
        skip = self.to_rgb1(out, latents[:, 1])
        for j in range(levels):
            i = 2 * j + 1
            out = self.style_convs[2 * j](out, latents[:, i], noise[i])
            scale, shift = conditions[2 * j], conditions[2 * j + 1]
            if sft_half:
                half = out.shape[1] // 2
                out = torch.cat([out[:, :half], out[:, half:] * scale + shift], dim=1)
            else:
                out = out * scale + shift
            out = self.style_convs[2 * j + 1](out, latents[:, i + 1], noise[i + 1])
            skip = self.to_rgbs[j](out, latents[:, i + 2], skip)
        return skip


# --------------------------------------------------------------------------------------------
# The whole network
# --------------------------------------------------------------------------------------------


class GFPGANv1Clean(nn.Module):
    """GFPGAN "clean" architecture in the configuration of the v1.4 release.

    Args:
        out_size: Output (and input) size; 512 for the released weights.
        style_dim: Latent width (512).
        channel_multiplier: StyleGAN2 channel multiplier (2 for v1.4).
        narrow: Channel narrowing ratio (1 for v1.4).
        num_mlp: Layers of the (unused) style MLP kept for the checkpoint (8).
        sft_half: Apply SFT to half of the channels (True for v1.4).

    Call :meth:`forward` with a ``(N, 3, S, S)`` RGB tensor in [-1, 1] (``S = out_size``).
    """

    def __init__(
        self,
        out_size: int = 512,
        *,
        style_dim: int = 512,
        channel_multiplier: int = 2,
        narrow: float = 1.0,
        num_mlp: int = 8,
        sft_half: bool = True,
    ) -> None:
        super().__init__()
        if out_size < 8 or out_size & (out_size - 1):
            raise ValueError(f"out_size must be a power of two >= 8, got {out_size}")
        self.out_size = out_size
        self.style_dim = style_dim
        self.sft_half = sft_half
        self.log_size = int(math.log2(out_size))
        self.levels = self.log_size - 2  # decoder levels 8 .. out_size

        def table(scale: float) -> dict[int, int]:
            t = {r: int(512 * scale) for r in (4, 8, 16, 32)}
            for r, base in ((64, 256), (128, 128), (256, 64), (512, 32), (1024, 16)):
                t[r] = int(base * channel_multiplier * scale)
            return t

        unet = table(narrow * 0.5)
        dec = table(narrow)
        self.conv_body_first = nn.Conv2d(3, unet[out_size], 1)
        self.conv_body_down = nn.ModuleList()
        cin = unet[out_size]
        for lvl in range(self.log_size, 2, -1):
            cout = unet[2 ** (lvl - 1)]
            self.conv_body_down.append(_ResampleBlock(cin, cout, 0.5))
            cin = cout
        self.final_conv = nn.Conv2d(cin, unet[4], 3, 1, 1)
        self.conv_body_up = nn.ModuleList()
        cin = unet[4]
        for lvl in range(3, self.log_size + 1):
            cout = unet[2**lvl]
            self.conv_body_up.append(_ResampleBlock(cin, cout, 2))
            cin = cout
        # pyramid-loss side heads: in the checkpoint, not used for inference
        self.toRGB = nn.ModuleList(nn.Conv2d(unet[2**lvl], 3, 1) for lvl in range(3, self.log_size + 1))
        self.num_latent = self.log_size * 2 - 2
        self.final_linear = nn.Linear(unet[4] * 16, self.num_latent * style_dim)
        self.stylegan_decoder = _Decoder(out_size, style_dim, dec, num_mlp)
        if not sft_half:
            raise NotImplementedError("only the sft_half=True configuration (GFPGAN v1.3/v1.4) is implemented")
        self.condition_scale = nn.ModuleList(_sft_branch(unet[2**lvl]) for lvl in range(3, self.log_size + 1))
        self.condition_shift = nn.ModuleList(_sft_branch(unet[2**lvl]) for lvl in range(3, self.log_size + 1))

    def forward(
        self,
        x: torch.Tensor,
        *,
        noise: NoiseMode = "stored",
        seed: int = 0,
        stop_at: int | None = None,
    ) -> torch.Tensor:
        """Restore a batch of aligned faces.

        Args:
            x: ``(N, 3, S, S)`` float RGB in [-1, 1], ``S = out_size``.
            noise: ``"stored"`` (the checkpoint's noise maps, deterministic; the default),
                ``"seeded"`` (noise drawn from a generator seeded with ``seed``, the same every
                call), or ``"random"`` (fresh noise per call and per face, as upstream GFPGANer).
            seed: Seed for ``noise="seeded"``.
            stop_at: Experimental: stop the decoder at this resolution (e.g. 256) and return its
                RGB skip at that size. Not what the network was trained to output.

        Returns:
            ``(N, 3, R, R)`` RGB, nominally in [-1, 1] (``R = stop_at or out_size``).
        """
        if noise not in NOISE_MODES:
            raise ValueError(f"noise must be one of {NOISE_MODES}, got {noise!r}")
        if x.ndim != 4 or x.shape[1] != 3 or x.shape[2] != self.out_size or x.shape[3] != self.out_size:
            raise ValueError(
                f"GFPGAN input must be (N, 3, {self.out_size}, {self.out_size}), got {tuple(x.shape)}; "
                f"align faces to a {self.out_size} crop (or resize the crop) before restoring"
            )
        levels = self.levels
        if stop_at is not None:
            if stop_at < 8 or stop_at > self.out_size or stop_at & (stop_at - 1):
                raise ValueError(f"stop_at must be a power of two in [8, {self.out_size}], got {stop_at}")
            levels = int(math.log2(stop_at)) - 2
        b = x.shape[0]
        feat = _lrelu(self.conv_body_first(x))
        skips = []
        for block in self.conv_body_down:
            feat = block(feat)
            skips.append(feat)
        feat = _lrelu(self.final_conv(feat))
        latents = self.final_linear(feat.reshape(b, -1)).view(b, self.num_latent, self.style_dim)
        conditions: list[torch.Tensor] = []
        for j in range(levels):
            feat = self.conv_body_up[j](feat + skips[-1 - j])
            conditions.append(self.condition_scale[j](feat))
            conditions.append(self.condition_shift[j](feat))
        maps = self.stylegan_decoder.noise_maps(noise, b, seed, levels)
        return self.stylegan_decoder(latents, conditions, maps, levels, self.sft_half)


# --------------------------------------------------------------------------------------------
# Pre/post-processing
# --------------------------------------------------------------------------------------------


def to_input(crops: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """RGB uint8 crops ``(N, S, S, 3)`` -> network input ``(N, 3, S, S)`` in [-1, 1].

    Same arithmetic as GFPGANer (``/255``, then ``(x - 0.5) / 0.5``), on RGB frames.
    """
    t = torch.from_numpy(np.ascontiguousarray(crops)).to(device=device, dtype=torch.float32)
    t = t.permute(0, 3, 1, 2) / 255.0
    return (t - 0.5) / 0.5


def to_uint8(out: torch.Tensor) -> np.ndarray:
    """Network output ``(N, 3, R, R)`` -> RGB uint8 ``(N, R, R, 3)``: clamp [-1, 1], rescale, round."""
    t = (out.detach().float().clamp(-1, 1) + 1) / 2
    arr = t.permute(0, 2, 3, 1).cpu().numpy()
    return np.clip(np.round(arr * 255.0), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def read_gfpgan_state(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read the state dict out of a GFPGAN checkpoint file.

    Accepts both torch serialisations (zip and legacy) and the containers ``{'params_ema': sd}``
    (preferred), ``{'params': sd}``. Loads with ``weights_only=True``: no code in the file runs.

    Raises:
        WeightsMissingError: the file does not exist (the message says where to get it).
        ModelLoadError: the file is unreadable, not a torch checkpoint, or has no state dict.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise missing_file_error(GFPGAN_WEIGHTS, p)
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except (
        RuntimeError, pickle.UnpicklingError, EOFError, ValueError, zipfile.BadZipFile, OSError, io.UnsupportedOperation
    ) as exc:
        raise ModelLoadError(
            f"cannot read GFPGAN checkpoint {p}: {exc.__class__.__name__}: {str(exc)[:300]}. The file is "
            f"probably truncated or not a torch checkpoint; delete it and download it again from {GFPGAN_URL}"
        ) from exc
    if not isinstance(obj, Mapping):
        raise ModelLoadError(f"GFPGAN checkpoint {p} holds a {type(obj).__name__}, not a dict of tensors")
    for key in ("params_ema", "params"):
        if key in obj:
            state = obj[key]
            break
    else:
        raise ModelLoadError(
            f"GFPGAN checkpoint {p} has no 'params_ema' or 'params' entry (top-level keys: "
            f"{sorted(map(str, obj))[:8]}); expected the official {GFPGAN_FILENAME} from {GFPGAN_URL}"
        )
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelLoadError(f"GFPGAN checkpoint {p}: the state dict is not a mapping of tensors")
    return dict(state)


def load_gfpgan(
    path: str | os.PathLike[str],
    *,
    device: torch.device | str = "cpu",
    out_size: int = 512,
) -> GFPGANv1Clean:
    """Build the v1.4 network and load an official checkpoint strictly.

    Args:
        path: ``GFPGANv1.4.pth`` (or a file in the same layout).
        device: torch device to put the model on.
        out_size: Network size; 512 for the released weights.

    Returns:
        The network in eval mode with gradients disabled.

    Raises:
        WeightsMissingError: the file does not exist.
        ModelLoadError: unreadable file, or keys/shapes that do not match the v1.4 architecture.
    """
    state = read_gfpgan_state(path)
    with torch.device("meta"):
        net = GFPGANv1Clean(out_size)
    expected = net.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [
        f"{k}: {tuple(state[k].shape)} (expected {tuple(v.shape)})"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys (e.g. {missing[:3]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[:3]})")
        if wrong:
            parts.append(f"{len(wrong)} shape mismatches (e.g. {wrong[:3]})")
        raise ModelLoadError(
            f"{path} is not a GFPGAN v1.4 (512, clean) checkpoint: " + "; ".join(parts)
            + f". Use the official {GFPGAN_FILENAME} from {GFPGAN_URL}"
        )
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise ModelLoadError(f"{path} contains non-finite values in {bad[:3]}; the file is corrupt, download it again")
    net.load_state_dict({k: v.float() for k, v in state.items()}, strict=True, assign=True)
    net = net.to(device).eval()
    for prm in net.parameters():
        prm.requires_grad_(False)
    log.debug("loaded GFPGAN v1.4 from %s on %s", path, device)
    return net
