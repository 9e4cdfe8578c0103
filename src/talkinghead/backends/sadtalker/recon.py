"""SadTalker 3DMM extractor: ReconNet (Deep3DFaceRecon ResNet-50) and ``align_img``.

- :class:`ReconNet`: a torchvision-layout ResNet-50 (v1.5: stride on the 3x3 conv),
  written here (no torchvision), without its fc, followed by seven biased 1x1 conv
  heads (id 80, exp 64, tex 80, angle 3, gamma 27, trans_xy 2, trans_z 1) -> 257
  coefficients. Input RGB in [0, 1], 224x224, no mean/std normalisation. Keys match
  ``face_3drecon.*`` of the safetensors bundle and ``epoch_20.pth['net_recon']``.
- :func:`align_img`: 5 points from 68 landmarks, least-squares scale/translation
  against the standard 5 points (:data:`LM3D_STD_5P`), PIL bicubic resize, 224 crop.
- :func:`source_coefficients`: crop image + 68 landmarks -> ``coeff_3dmm`` (73) and
  the full 257 vector, as upstream ``CropAndExtract.generate`` stores them.

Torch is imported at module top: import this module only where torch is wanted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ...errors import ModelLoadError

__all__ = [
    "LM3D_STD_5P",
    "AlignResult",
    "ReconNet",
    "align_img",
    "extract_5p",
    "load_recon_net",
    "source_coefficients",
]

#: The five standard 3-D points [left eye, right eye, nose, left mouth, right mouth]
#: (float32) that upstream derives from ``src/config/similarity_Lm3D_all.mat`` (key
#: ``lm``, 68x3 float32) in ``load_lm3d``: 1-based points 31, mean(37, 40),
#: mean(43, 46), 49, 55, reordered [1, 2, 0, 3, 4]. Values read with
#: ``scipy.io.loadmat`` from OpenTalker/SadTalker@cd4c046 and printed as the exact
#: decimal form of each float32.
LM3D_STD_5P = np.array(
    [
        [-0.3114865720272064, 0.29036077857017517, 0.13377952575683594],
        [0.30979886651039124, 0.289720356464386, 0.1317952573299408],
        [0.003253498813137412, -0.04617932438850403, 0.5524424314498901],
        [-0.25216928124427795, -0.3813391625881195, 0.22405731678009033],
        [0.24846619367599487, -0.38128235936164856, 0.22235769033432007],
    ],
    dtype=np.float32,
)
LM3D_STD_5P.setflags(write=False)

_HEADS = (80, 64, 80, 3, 27, 2, 1)


class Bottleneck(nn.Module):
    """ResNet v1.5 bottleneck with torchvision key names."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet50Trunk(nn.Module):
    """ResNet-50 up to global average pooling: (B,3,H,W) -> (B,32*width,1,1) (2048 channels).

    Args:
        layers: bottleneck blocks per stage ((3, 4, 6, 3)).
        width: channels of the stem and of the first stage's bottlenecks (64).
    """

    def __init__(self, layers: tuple[int, int, int, int] = (3, 4, 6, 3), width: int = 64) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self._inplanes = width
        self.layer1 = self._make_layer(width, layers[0], 1)
        self.layer2 = self._make_layer(2 * width, layers[1], 2)
        self.layer3 = self._make_layer(4 * width, layers[2], 2)
        self.layer4 = self._make_layer(8 * width, layers[3], 2)
        self.out_channels = 32 * width
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))

    def _make_layer(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self._inplanes != planes * 4:
            downsample = nn.Sequential(
                nn.Conv2d(self._inplanes, planes * 4, 1, stride=stride, bias=False), nn.BatchNorm2d(planes * 4)
            )
        mods = [Bottleneck(self._inplanes, planes, stride, downsample)]
        self._inplanes = planes * 4
        mods += [Bottleneck(self._inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*mods)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.avgpool(x)


class ReconNet(nn.Module):
    """Deep3DFaceRecon coefficient regressor: (B,3,224,224) in [0,1] -> (B,257).

    Args:
        layers, width: ResNet-50 trunk shape (see :class:`ResNet50Trunk`).
    """

    def __init__(self, layers: tuple[int, int, int, int] = (3, 4, 6, 3), width: int = 64) -> None:
        super().__init__()
        self.backbone = ResNet50Trunk(layers, width)
        self.final_layers = nn.ModuleList([nn.Conv2d(self.backbone.out_channels, n, 1, bias=True) for n in _HEADS])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.backbone(x)
        return torch.flatten(torch.cat([head(f) for head in self.final_layers], 1), 1)

    @torch.inference_mode()
    def predict(self, image: np.ndarray) -> np.ndarray:
        """(224,224,3) uint8 RGB (or (N,224,224,3)) -> (N,257) float32."""
        arr = np.asarray(image)
        if arr.ndim == 3:
            arr = arr[None]
        x = (arr.astype(np.float64) / 255.0).astype(np.float32)
        p = next(self.parameters())
        t = torch.as_tensor(x, device=p.device).permute(0, 3, 1, 2)
        return self(t).float().cpu().numpy()


def load_recon_net(state: Mapping[str, object], device: str | torch.device = "cpu") -> ReconNet:
    """Build a ReconNet from ``face_3drecon.*`` (prefix stripped) or ``['net_recon']``; strict."""
    tensors = {k: v if isinstance(v, torch.Tensor) else torch.from_numpy(np.asarray(v)) for k, v in state.items()}
    model = ReconNet()
    own = model.state_dict()
    for k in own:
        if k.endswith("num_batches_tracked") and k not in tensors:
            tensors[k] = own[k]
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        raise ModelLoadError(f"face_3drecon checkpoint does not fit the ReconNet layout: {exc}") from exc
    return model.to(device).eval()


# --------------------------------------------------------------------- alignment
def extract_5p(lm68: np.ndarray) -> np.ndarray:
    """68 landmarks -> 5 points [left eye, right eye, nose, left mouth, right mouth]."""
    lm = np.asarray(lm68)
    idx = np.array([31, 37, 40, 43, 46, 49, 55]) - 1
    pts = np.stack(
        [lm[idx[0]], np.mean(lm[idx[[1, 2]]], 0), np.mean(lm[idx[[3, 4]]], 0), lm[idx[5]], lm[idx[6]]], 0
    )
    return pts[[1, 2, 0, 3, 4]]


def _pos(xp: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, float]:
    """Least-squares scaled-orthographic fit of 2-D points xp (2,n) to 3-D x (3,n)."""
    n = xp.shape[1]
    a = np.zeros([2 * n, 8])
    a[0 : 2 * n - 1 : 2, 0:3] = x.T
    a[0 : 2 * n - 1 : 2, 3] = 1
    a[1 : 2 * n : 2, 4:7] = x.T
    a[1 : 2 * n : 2, 7] = 1
    b = np.reshape(xp.T, [2 * n, 1])
    k = np.linalg.lstsq(a, b, rcond=None)[0]
    s = (np.linalg.norm(k[0:3]) + np.linalg.norm(k[4:7])) / 2
    return np.array([k[3, 0], k[7, 0]]), float(s)


@dataclass(frozen=True)
class AlignResult:
    """Output of :func:`align_img`.

    Attributes:
        image: (224, 224, 3) uint8 RGB aligned crop.
        trans_params: (5,) float32 [w0, h0, s, tx, ty].
    """

    image: np.ndarray
    trans_params: np.ndarray


def align_img(
    image: np.ndarray,
    lm68: np.ndarray | None,
    *,
    target_size: int = 224,
    rescale_factor: float = 102.0,
) -> AlignResult:
    """Align a face crop for ReconNet (upstream ``align_img`` with its caller's prep).

    Args:
        image: (H, W, 3) uint8 RGB (upstream: the crop resized to the render size).
        lm68: (68, 2) landmarks in image pixels (x right, y down); None uses the
            standard points (upstream's fallback when detection failed).
        target_size: Output size (224).
        rescale_factor: Upstream's 102.

    Returns:
        An :class:`AlignResult`.
    """
    from PIL import Image

    img = Image.fromarray(np.asarray(image, dtype=np.uint8))
    w0, h0 = img.size
    if lm68 is None:
        lm5 = (LM3D_STD_5P[:, :2] + 1) / 2.0
        lm5 = np.concatenate([lm5[:, :1] * w0, lm5[:, 1:2] * h0], 1)
    else:
        lm = np.array(lm68, dtype=np.float32).reshape(-1, 2)
        lm[:, -1] = h0 - 1 - lm[:, -1]
        lm5 = extract_5p(lm) if lm.shape[0] != 5 else lm
    t, s = _pos(lm5.T, LM3D_STD_5P.T)
    s = rescale_factor / s
    w = int(np.int32(w0 * s))
    h = int(np.int32(h0 * s))
    half = target_size / 2
    left = int(np.int32(w / 2 - half + float((t[0] - w0 / 2) * s)))
    up = int(np.int32(h / 2 - half + float((h0 / 2 - t[1]) * s)))
    resized = img.resize((w, h), resample=Image.BICUBIC)
    crop = resized.crop((left, up, left + target_size, up + target_size))
    trans = np.array([w0, h0, s, t[0], t[1]], dtype=np.float64).astype(np.float32)
    return AlignResult(np.asarray(crop, dtype=np.uint8).copy(), trans)


def source_coefficients(
    recon: ReconNet, image: np.ndarray, lm68: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Source 3DMM coefficients as upstream stores them.

    Args:
        recon: Loaded ReconNet.
        image: (H, W, 3) uint8 RGB crop (upstream: resized to the render size).
        lm68: (68, 2) landmarks of that image, or None.

    Returns:
        ``(coeff_3dmm (73,), full_3dmm (257,))`` float32; coeff_3dmm = exp[80:144] ||
        angle[224:227] || trans[254:257] || (s, tx, ty).
    """
    aligned = align_img(image, lm68)
    full = recon.predict(aligned.image)[0]
    coeff = np.concatenate([full[80:144], full[224:227], full[254:257], aligned.trans_params[2:]]).astype(np.float32)
    return coeff, full.astype(np.float32)
