"""RetinaFace (MobileNet-0.25 or ResNet-50 backbone), weight-compatible with facexlib's release files.

The module names mirror the official state dicts (``body.stage1..3`` or ``body.conv1/layer1..4``,
``fpn.*``, ``ssh1..3``, ``ClassHead.i``, ``BboxHead.i``, ``LandmarkHead.i``), so
``detection_mobilenet0.25_Final.pth`` and ``detection_Resnet50_Final.pth`` load unchanged (a leading
``module.`` is stripped). Post-processing follows facexlib 0.3.0's ``detect_faces``: BGR input minus
(104, 117, 123) at native size, prior-box decoding with variances (0.1, 0.2), scores strictly above
the threshold, descending sort, greedy NMS at IoU 0.4 with torchvision's semantics. Priors are
built with numpy once per input size and cached.

This is a model module: it imports torch at the top, so import it lazily (inside ``load()``).
"""

from __future__ import annotations

import io
import os
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from talkinghead.face.checkpoints import load_into, load_state_dict_file, strip_module_prefix

__all__ = [
    "MODELS",
    "RetinaFace",
    "priors_for",
    "decode_boxes",
    "decode_landmarks",
    "nms",
    "postprocess",
    "detect_faces",
    "detect_faces_batch",
    "load_retinaface",
]

#: Per-variant constants: FPN/SSH width and the slope of their LeakyReLU.
MODELS: dict[str, dict[str, Any]] = {
    "mobilenet0.25": {"in_channels": (64, 128, 256), "out_channels": 64, "slope": 0.1},
    "resnet50": {"in_channels": (512, 1024, 2048), "out_channels": 256, "slope": 0.0},
}
_ALIASES = {"mobile0.25": "mobilenet0.25", "mobilenet": "mobilenet0.25", "retinaface_mobile0.25": "mobilenet0.25",
            "retinaface_resnet50": "resnet50", "r50": "resnet50"}

MIN_SIZES = ((16, 32), (64, 128), (256, 512))
STEPS = (8, 16, 32)
VARIANCE = (0.1, 0.2)
MEAN_BGR = (104.0, 117.0, 123.0)


def canonical_model_name(name: str) -> str:
    """Map accepted spellings (``mobile0.25``, ``retinaface_resnet50``...) to a key of :data:`MODELS`."""
    name = _ALIASES.get(name.lower(), name.lower())
    if name not in MODELS:
        from talkinghead.errors import ConfigError

        raise ConfigError(f"unknown RetinaFace model {name!r}; use one of {sorted(MODELS)}")
    return name


# ----------------------------------------------------------------------------- building blocks
def _conv_bn(cin: int, cout: int, k: int, stride: int, slope: float | None, groups: int = 1) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if slope is not None:
        layers.append(nn.LeakyReLU(slope, inplace=True))
    return layers


def _seq(*layers: nn.Module) -> nn.Sequential:
    return nn.Sequential(*layers)


def _dw(cin: int, cout: int, stride: int) -> nn.Sequential:
    """Depthwise 3x3 + BN + act, pointwise 1x1 + BN + act (keys .0 .1 .3 .4)."""
    return _seq(*_conv_bn(cin, cin, 3, stride, 0.1, groups=cin), *_conv_bn(cin, cout, 1, 1, 0.1))


class MobileNetV1Body(nn.Module):
    """The three kept stages of MobileNet-0.25 (the classifier is not part of the checkpoint).

    ``width`` is the stem's channels (8); the stages end with ``8 * width``, ``16 * width`` and
    ``32 * width`` channels (64, 128, 256).
    """

    def __init__(self, width: int = 8) -> None:
        super().__init__()
        w = width
        self.stage1 = _seq(_seq(*_conv_bn(3, w, 3, 2, 0.1)), _dw(w, 2 * w, 1), _dw(2 * w, 4 * w, 2),
                           _dw(4 * w, 4 * w, 1), _dw(4 * w, 8 * w, 2), _dw(8 * w, 8 * w, 1))
        self.stage2 = _seq(_dw(8 * w, 16 * w, 2), *[_dw(16 * w, 16 * w, 1) for _ in range(5)])
        self.stage3 = _seq(_dw(16 * w, 32 * w, 2), _dw(32 * w, 32 * w, 1))
        self.out_channels = (8 * w, 16 * w, 32 * w)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        c1 = self.stage1(x)
        c2 = self.stage2(c1)
        return [c1, c2, self.stage3(c2)]


class _Bottleneck(nn.Module):
    """torchvision-layout ResNet bottleneck (stride on the 3x3 conv)."""

    def __init__(self, cin: int, width: int, stride: int) -> None:
        super().__init__()
        cout = width * 4
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = _seq(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class ResNet50Body(nn.Module):
    """ResNet-50 up to ``layer4`` with torchvision's module names (no avgpool/fc).

    ``width`` is the stem's and first stage's channels (64), ``depths`` the bottlenecks per stage
    ((3, 4, 6, 3)); the last three stages end with ``8, 16, 32 * width`` channels (512, 1024, 2048).
    """

    def __init__(self, width: int = 64, depths: Sequence[int] = (3, 4, 6, 3)) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin = width
        stages = ((width, depths[0], 1), (2 * width, depths[1], 2), (4 * width, depths[2], 2), (8 * width, depths[3], 2))
        for i, (planes, blocks, stride) in enumerate(stages, start=1):
            layer = []
            for b in range(blocks):
                layer.append(_Bottleneck(cin, planes, stride if b == 0 else 1))
                cin = planes * 4
            setattr(self, f"layer{i}", _seq(*layer))
        self.out_channels = (8 * width, 16 * width, 32 * width)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer1(x)
        c2 = self.layer2(x)
        c3 = self.layer3(c2)
        return [c2, c3, self.layer4(c3)]


class FPN(nn.Module):
    """Three 1x1 laterals, top-down nearest upsampling with 3x3 merge convs."""

    def __init__(self, in_channels: Sequence[int], out_channels: int, slope: float) -> None:
        super().__init__()
        for i, cin in enumerate(in_channels, start=1):
            setattr(self, f"output{i}", _seq(*_conv_bn(cin, out_channels, 1, 1, slope)))
        self.merge1 = _seq(*_conv_bn(out_channels, out_channels, 3, 1, slope))
        self.merge2 = _seq(*_conv_bn(out_channels, out_channels, 3, 1, slope))

    def forward(self, feats: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        o1, o2, o3 = self.output1(feats[0]), self.output2(feats[1]), self.output3(feats[2])
        o2 = self.merge2(o2 + F.interpolate(o3, size=o2.shape[2:], mode="nearest"))
        o1 = self.merge1(o1 + F.interpolate(o2, size=o1.shape[2:], mode="nearest"))
        return [o1, o2, o3]


class SSH(nn.Module):
    """Single-stage headless context module: 3x3 | 5x5-equivalent | 7x7-equivalent, concat, ReLU."""

    def __init__(self, channels: int, slope: float) -> None:
        super().__init__()
        q = channels // 4
        self.conv3X3 = _seq(*_conv_bn(channels, channels // 2, 3, 1, None))
        self.conv5X5_1 = _seq(*_conv_bn(channels, q, 3, 1, slope))
        self.conv5X5_2 = _seq(*_conv_bn(q, q, 3, 1, None))
        self.conv7X7_2 = _seq(*_conv_bn(q, q, 3, 1, slope))
        self.conv7x7_3 = _seq(*_conv_bn(q, q, 3, 1, None))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.conv5X5_1(x)
        out = torch.cat([self.conv3X3(x), self.conv5X5_2(t), self.conv7x7_3(self.conv7X7_2(t))], dim=1)
        return F.relu(out)


class _Head(nn.Module):
    def __init__(self, channels: int, per_anchor: int, anchors: int = 2) -> None:
        super().__init__()
        self.per_anchor = per_anchor
        self.conv1x1 = nn.Conv2d(channels, anchors * per_anchor, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1x1(x).permute(0, 2, 3, 1)
        return out.reshape(out.shape[0], -1, self.per_anchor)


class RetinaFace(nn.Module):
    """RetinaFace network. ``forward`` returns ``(loc, conf, landms)``; conf is softmaxed [bg, face].

    Args:
        model: ``"mobilenet0.25"`` or ``"resnet50"``.
        width: Backbone width (default: the release's, 8 for MobileNet-0.25, 64 for ResNet-50).
        depths: ResNet-50 bottlenecks per stage (default (3, 4, 6, 3)).
        out_channels: FPN/SSH/head channels (default: the release's, 64 or 256; a multiple of 4).
    """

    def __init__(self, model: str = "mobilenet0.25", *, width: int | None = None,
                 depths: Sequence[int] | None = None, out_channels: int | None = None) -> None:
        super().__init__()
        self.model_name = canonical_model_name(model)
        cfg = MODELS[self.model_name]
        if self.model_name == "mobilenet0.25":
            self.body = MobileNetV1Body(width or 8)
        else:
            self.body = ResNet50Body(width or 64, depths or (3, 4, 6, 3))
        ch = out_channels or cfg["out_channels"]
        slope = cfg["slope"]
        self.fpn = FPN(self.body.out_channels, ch, slope)
        self.ssh1, self.ssh2, self.ssh3 = SSH(ch, slope), SSH(ch, slope), SSH(ch, slope)
        self.ClassHead = nn.ModuleList(_Head(ch, 2) for _ in range(3))
        self.BboxHead = nn.ModuleList(_Head(ch, 4) for _ in range(3))
        self.LandmarkHead = nn.ModuleList(_Head(ch, 10) for _ in range(3))
        self.register_buffer("mean_bgr", torch.tensor(MEAN_BGR).view(1, 3, 1, 1), persistent=False)
        self.eval()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Raw heads for a mean-subtracted BGR batch ``(N, 3, H, W)``."""
        fpn = self.fpn(self.body(x))
        feats = [self.ssh1(fpn[0]), self.ssh2(fpn[1]), self.ssh3(fpn[2])]
        loc = torch.cat([h(f) for h, f in zip(self.BboxHead, feats)], dim=1)
        cls = torch.cat([h(f) for h, f in zip(self.ClassHead, feats)], dim=1)
        ldm = torch.cat([h(f) for h, f in zip(self.LandmarkHead, feats)], dim=1)
        return loc, F.softmax(cls, dim=-1), ldm

    def preprocess(self, frames_bgr: np.ndarray) -> torch.Tensor:
        """uint8/float BGR ``(H, W, 3)`` or ``(N, H, W, 3)`` -> mean-subtracted float32 NCHW tensor."""
        arr = np.asarray(frames_bgr)
        if arr.ndim == 3:
            arr = arr[None]
        x = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32)).permute(0, 3, 1, 2).contiguous()
        dev = self.mean_bgr.device
        return x.to(dev) - self.mean_bgr


# ----------------------------------------------------------------------------- priors and decoding
@lru_cache(maxsize=32)
def _priors_np(height: int, width: int) -> np.ndarray:
    out = []
    for sizes, step in zip(MIN_SIZES, STEPS):
        fh, fw = -(-height // step), -(-width // step)
        cy = (np.arange(fh, dtype=np.float64) + 0.5) * step / height
        cx = (np.arange(fw, dtype=np.float64) + 0.5) * step / width
        grid = np.empty((fh, fw, len(sizes), 4), dtype=np.float64)
        grid[..., 0] = cx[None, :, None]
        grid[..., 1] = cy[:, None, None]
        for a, s in enumerate(sizes):
            grid[:, :, a, 2] = s / width
            grid[:, :, a, 3] = s / height
        out.append(grid.reshape(-1, 4))
    pri = np.concatenate(out).astype(np.float32)
    pri.setflags(write=False)
    return pri


def priors_for(height: int, width: int) -> torch.Tensor:
    """Anchors ``(P, 4)`` as (cx, cy, w, h), normalised, float32; cached per size."""
    return torch.from_numpy(_priors_np(int(height), int(width)).copy())


def decode_boxes(loc: torch.Tensor, priors: torch.Tensor) -> torch.Tensor:
    """``(..., P, 4)`` regressions -> normalised x1, y1, x2, y2."""
    centre = priors[..., :2] + loc[..., :2] * VARIANCE[0] * priors[..., 2:]
    size = priors[..., 2:] * torch.exp(loc[..., 2:] * VARIANCE[1])
    top_left = centre - size / 2
    return torch.cat((top_left, size + top_left), dim=-1)


def decode_landmarks(ldm: torch.Tensor, priors: torch.Tensor) -> torch.Tensor:
    """``(..., P, 10)`` regressions -> normalised (x, y) for 5 points, flattened to 10."""
    parts = [priors[..., :2] + ldm[..., 2 * p : 2 * p + 2] * VARIANCE[0] * priors[..., 2:] for p in range(5)]
    return torch.cat(parts, dim=-1)


def nms(boxes: np.ndarray, threshold: float) -> np.ndarray:
    """Greedy NMS over boxes already in descending score order (torchvision.ops.nms semantics).

    Area is ``(x2 - x1) * (y2 - y1)`` without the +1; a box is dropped when its IoU with a kept
    box is strictly greater than ``threshold``.

    Returns:
        Indices of kept boxes, in order.
    """
    boxes = np.asarray(boxes, dtype=np.float32)
    n = len(boxes)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    areas = (x2 - x1) * (y2 - y1)
    suppressed = np.zeros(n, dtype=bool)
    keep = []
    for i in range(n):
        if suppressed[i]:
            continue
        keep.append(i)
        rest = np.flatnonzero(~suppressed[i + 1 :]) + i + 1
        if rest.size == 0:
            break
        w = np.maximum(np.float32(0), np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]))
        h = np.maximum(np.float32(0), np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]))
        inter = w * h
        with np.errstate(divide="ignore", invalid="ignore"):  # 0/0 -> nan, never suppresses (as torchvision)
            iou = inter / (areas[i] + areas[rest] - inter)
        suppressed[rest[iou.astype(np.float64) > threshold]] = True
    return np.asarray(keep, dtype=np.int64)


def postprocess(
    loc: torch.Tensor,
    conf: torch.Tensor,
    ldm: torch.Tensor,
    height: int,
    width: int,
    *,
    conf_threshold: float = 0.8,
    nms_threshold: float = 0.4,
    resize: float = 1.0,
) -> np.ndarray:
    """One image's raw heads (no batch axis) -> ``(K, 15)`` float32 rows like facexlib's ``detect_faces``.

    Rows are x1, y1, x2, y2, score, then five (x, y) landmarks, in descending score order after NMS.
    """
    priors = priors_for(height, width).to(loc.device)
    scores = conf[:, 1]
    keep = scores > conf_threshold
    if not bool(keep.any()):
        return np.zeros((0, 15), dtype=np.float32)
    idx = torch.nonzero(keep).squeeze(1)
    scale = torch.tensor([width, height] * 5, dtype=torch.float32, device=loc.device)
    boxes = decode_boxes(loc[idx], priors[idx]) * scale[:4]
    lms = decode_landmarks(ldm[idx], priors[idx]) * scale
    if resize != 1:
        boxes, lms = boxes / resize, lms / resize
    boxes_np, lms_np, scores_np = boxes.cpu().numpy(), lms.cpu().numpy(), scores[idx].cpu().numpy()
    order = scores_np.argsort()[::-1]
    dets = np.hstack((boxes_np[order], scores_np[order, None])).astype(np.float32, copy=False)
    kept = nms(dets[:, :4], nms_threshold)
    return np.concatenate((dets[kept], lms_np[order][kept].astype(np.float32)), axis=1)


@torch.no_grad()
def detect_faces(
    net: RetinaFace, image_bgr: np.ndarray, conf_threshold: float = 0.8, nms_threshold: float = 0.4
) -> np.ndarray:
    """facexlib-compatible detection on one BGR image at native size -> ``(K, 15)`` float32 rows."""
    h, w = image_bgr.shape[:2]
    loc, conf, ldm = net(net.preprocess(image_bgr))
    return postprocess(loc[0], conf[0], ldm[0], h, w, conf_threshold=conf_threshold, nms_threshold=nms_threshold)


@torch.no_grad()
def detect_faces_batch(
    net: RetinaFace,
    frames_bgr: np.ndarray | Sequence[np.ndarray],
    conf_threshold: float = 0.8,
    nms_threshold: float = 0.4,
    batch_size: int = 8,
) -> list[np.ndarray]:
    """Detect on equally sized frames, ``batch_size`` per forward; one ``(K, 15)`` array per frame."""
    frames = np.asarray(frames_bgr)
    if frames.ndim != 4:
        raise ValueError("frames must be (N, H, W, 3)")
    h, w = frames.shape[1:3]
    out: list[np.ndarray] = []
    for s in range(0, len(frames), max(1, batch_size)):
        loc, conf, ldm = net(net.preprocess(frames[s : s + batch_size]))
        for i in range(loc.shape[0]):
            out.append(postprocess(loc[i], conf[i], ldm[i], h, w, conf_threshold=conf_threshold,
                                   nms_threshold=nms_threshold))
    return out


# ----------------------------------------------------------------------------- loading
def load_retinaface(
    source: str | os.PathLike[str] | io.BytesIO | Mapping[str, torch.Tensor],
    model: str = "mobilenet0.25",
    device: str | torch.device = "cpu",
) -> RetinaFace:
    """Build RetinaFace and load an official checkpoint (path, buffer or state dict), with or without ``module.``.

    Raises:
        ModelLoadError: unreadable file or keys/shapes that do not match ``model``.
    """
    net = RetinaFace(model)
    state = source if isinstance(source, Mapping) else load_state_dict_file(source, f"RetinaFace {model}")
    if isinstance(state, Mapping):
        state = OrderedDict(strip_module_prefix(state))
    load_into(net, state, f"RetinaFace {net.model_name}", str(getattr(source, "name", source))[:200]
              if not isinstance(source, Mapping) else "<state dict>")
    return net.to(device).eval()
