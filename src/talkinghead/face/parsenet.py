"""ParseNet face parsing (facexlib ``parsing_parsenet.pth``), weight-compatible, plus the paste-back mask.

Architecture (PSFRGAN-derived, as configured by facexlib with in/out size 512): reflection-padded
3x3 convs, BatchNorm, LeakyReLU(0.2); residual blocks whose shortcut is identity or a plain 3x3 conv
with bias; encoder 3->64 conv then four stride-2 blocks (64->128->256->256->256), ten 256-channel body
blocks with an outer residual, four nearest-x2 decoder blocks (256->256->256->128->64), and two heads:
19-class mask logits and a 3-channel image. Fully convolutional: any size divisible by 16 runs.

Imports torch at the top: import lazily.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from talkinghead.face.checkpoints import load_into, load_state_dict_file, strip_module_prefix

__all__ = ["ParseNet", "MASK_KEEP", "load_parsenet", "labels_to_mask", "parse_face_bgr"]

#: 255 for kept classes, 0 for background (0), neck (14), cloth (16), hair (17), hat (18).
MASK_KEEP = np.array([0, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 0, 255, 0, 0, 0],
                     dtype=np.float64)


class _Conv(nn.Module):
    """Optional nearest x2 upsample, reflection pad, conv, optional BN and LeakyReLU(0.2)."""

    def __init__(self, cin: int, cout: int, *, down: bool = False, up: bool = False, bn: bool = False,
                 act: bool = False) -> None:
        super().__init__()
        self.up, self.act = up, act
        self.conv2d = nn.Conv2d(cin, cout, 3, 2 if down else 1, bias=not bn)
        if bn:
            self.norm = nn.Module()
            self.norm.norm = nn.BatchNorm2d(cout)  # key: <name>.norm.norm.*
        else:
            self.norm = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.up:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        x = self.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"))
        if self.norm is not None:
            x = self.norm.norm(x)
        if self.act:
            x = F.leaky_relu(x, 0.2)
        return x


class _Res(nn.Module):
    def __init__(self, cin: int, cout: int, scale: str = "none") -> None:
        super().__init__()
        down, up = scale == "down", scale == "up"
        self.shortcut_func = None if (scale == "none" and cin == cout) else _Conv(cin, cout, down=down, up=up)
        self.conv1 = _Conv(cin, cout, up=up, bn=True, act=True)
        self.conv2 = _Conv(cout, cout, down=down, bn=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.shortcut_func is None else self.shortcut_func(x)
        return identity + self.conv2(self.conv1(x))


class ParseNet(nn.Module):
    """ParseNet(in_size=512, out_size=512, parsing_ch=19). ``forward`` returns ``(mask_logits, image)``."""

    def __init__(self, parsing_ch: int = 19, res_depth: int = 10, *, base: int = 64, min_ch: int = 32,
                 max_ch: int = 256) -> None:
        """``base`` channels at full resolution, doubled per down level and clipped to
        [``min_ch``, ``max_ch``] (64, 32, 256 in the release); ``res_depth`` residual blocks (10)."""
        super().__init__()
        clip = lambda c: max(min_ch, min(c, max_ch))  # noqa: E731
        enc: list[nn.Module] = [_Conv(3, base)]
        ch = base
        for _ in range(4):
            enc.append(_Res(clip(ch), clip(ch * 2), "down"))
            ch *= 2
        self.encoder = nn.Sequential(*enc)
        self.body = nn.Sequential(*[_Res(clip(ch), clip(ch)) for _ in range(res_depth)])
        dec = []
        for _ in range(4):
            dec.append(_Res(clip(ch), clip(ch // 2), "up"))
            ch //= 2
        self.decoder = nn.Sequential(*dec)
        self.out_img_conv = _Conv(clip(ch), 3)
        self.out_mask_conv = _Conv(clip(ch), parsing_ch)
        self.eval()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feat = self.encoder(x)
        y = self.decoder(feat + self.body(feat))
        return self.out_mask_conv(y), self.out_img_conv(y)


def load_parsenet(
    source: str | os.PathLike[str] | io.BytesIO | Mapping[str, torch.Tensor], device: str | torch.device = "cpu"
) -> ParseNet:
    """Build ParseNet and strictly load ``parsing_parsenet.pth`` (a leading ``module.`` is tolerated).

    Raises:
        ModelLoadError: unreadable or mismatching checkpoint.
    """

    net = ParseNet()
    state = source if isinstance(source, Mapping) else load_state_dict_file(source, "ParseNet")
    if isinstance(state, Mapping):
        state = strip_module_prefix(state)
    load_into(net, state, "ParseNet", "<state dict>" if isinstance(source, Mapping) else str(source)[:200])
    return net.to(device).eval()


def labels_to_mask(labels: np.ndarray) -> np.ndarray:
    """19-class label map -> float64 mask, 255 on face classes and 0 elsewhere (upstream colormap)."""
    return MASK_KEEP[np.asarray(labels, dtype=np.intp)]


@torch.no_grad()
def parse_face_bgr(net: ParseNet, face_bgr: np.ndarray) -> np.ndarray:
    """Upstream pre-processing + ParseNet -> ``(512, 512)`` int64 label map for a uint8 BGR face.

    The face is resized to 512 (bilinear), turned to RGB, scaled to [0, 1] and normalised with
    mean = std = 0.5, as facexlib's FaceRestoreHelper does.
    """
    import cv2

    x = cv2.resize(face_bgr, (512, 512), interpolation=cv2.INTER_LINEAR).astype(np.float32) / 255.0
    x = cv2.cvtColor(x, cv2.COLOR_BGR2RGB)
    t = torch.from_numpy(x.transpose(2, 0, 1).copy())[None]
    t = (t - 0.5) / 0.5
    dev = next(net.parameters()).device
    logits = net(t.to(dev))[0]
    return logits.argmax(dim=1)[0].cpu().numpy()
