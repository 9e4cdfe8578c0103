"""AWing FAN: 98-point (WFLW) face landmarks, weight-compatible with facexlib's ``alignment_WFLW_4HG.pth``.

SadTalker's preprocessing (``KeypointExtractor`` / ``Preprocesser.get_landmark``) detects the face
with RetinaFace ResNet-50, slices the detector box out of the image, runs this network on the slice
and maps the 98 WFLW points to the 68-point iBUG scheme. This module re-implements that path:

- :class:`AWingFAN` - the network: a CoordConv stem (x/y/radius coordinate channels), three
  pre-activation three-branch residual blocks, then four stacked depth-4 hourglasses. Every
  hourglass starts with a 1x1 CoordConv whose input also carries the previous stack's
  boundary-gated coordinates (coordinates where the previous boundary heatmap exceeds 0.05).
  Each stack predicts 98 landmark heatmaps plus one boundary heatmap at 64x64.
- :func:`decode_heatmaps` - argmax per heatmap, a quarter-pixel shift towards the larger
  neighbour, ``+ 0.5`` (upstream ``calculate_points``, quirks included, see its docstring).
- :func:`get_landmarks` - crop the box, resize to 256x256, RGB -> BGR, ``/ 255``, run, decode and
  map back to image pixels.
- :func:`landmarks_98_to_68` - the WFLW-98 -> iBUG-68 index mapping.
- :func:`load_awing` - strict loading of the official checkpoint (``{'state_dict': ...}``, a flat
  state dict, with or without ``module.``).
- :class:`AWingAligner` - weights resolution + lazy loading; :class:`AWingLandmarks` - a SadTalker
  :class:`~talkinghead.face.landmarks.LandmarkSource` built from RetinaFace boxes and
  AWing points.

Torch and OpenCV are imported lazily except in the network definition, which needs ``torch.nn``;
import this module only where torch is available (the face package itself stays cheap).
"""

from __future__ import annotations

import io
import os
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from talkinghead.errors import ImageError, WeightsMissingError
from talkinghead.values import Face
from talkinghead.weights import catalog, missing_file_error, resolve

__all__ = [
    "AWING_FILE",
    "AWING_URL",
    "AWING_WEIGHTS_NAME",
    "WFLW98_TO_IBUG68",
    "AWingAligner",
    "AWingFAN",
    "AWingLandmarks",
    "decode_heatmaps",
    "get_landmarks",
    "landmarks_98_to_68",
    "load_awing",
    "network_input",
]

AWING_WEIGHTS_NAME = "awing-wflw"
AWING_FILE = catalog.entry(AWING_WEIGHTS_NAME).filename
AWING_URL = catalog.entry(AWING_WEIGHTS_NAME).urls[0]
DOWNLOAD_HINT = "talkinghead weights download awing retinaface"


# ----------------------------------------------------------------------------- network
def _coords(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Coordinate planes in [-1, 1] for a (N, C, H, W) tensor: along H, along W, and the normalised radius."""
    n, _, h, w = x.shape
    rows = torch.arange(h, dtype=torch.float32, device=x.device) / (h - 1) * 2 - 1
    cols = torch.arange(w, dtype=torch.float32, device=x.device) / (w - 1) * 2 - 1
    along_h = rows.view(1, 1, h, 1).expand(n, 1, h, w)
    along_w = cols.view(1, 1, 1, w).expand(n, 1, h, w)
    radius = torch.sqrt(along_h * along_h + along_w * along_w)
    return along_h, along_w, radius / radius.max()


class _CoordConv(nn.Module):
    """Convolution over the input plus coordinate planes (and, when given, boundary-gated coordinates)."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, padding: int, boundary: bool) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch + 3 + (2 if boundary else 0), out_ch, kernel, stride, padding)

    def forward(self, x: torch.Tensor, heat: torch.Tensor | None = None) -> torch.Tensor:
        along_h, along_w, radius = _coords(x)
        parts = [x, along_h, along_w, radius]
        if heat is not None:
            on = heat[:, -1:].clamp(0.0, 1.0) > 0.05
            zero = torch.zeros_like(along_h)
            parts += [torch.where(on, along_h, zero), torch.where(on, along_w, zero)]
        return self.conv(torch.cat(parts, 1))


def _c3(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, 1, 1, bias=False)


class _ConvBlock(nn.Module):
    """Pre-activation block with three 3x3 branches (C/2, C/4, C/4 channels) concatenated, plus a skip."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        half, quarter = cout // 2, cout // 4
        self.bn1, self.conv1 = nn.BatchNorm2d(cin), _c3(cin, half)
        self.bn2, self.conv2 = nn.BatchNorm2d(half), _c3(half, quarter)
        self.bn3, self.conv3 = nn.BatchNorm2d(quarter), _c3(quarter, quarter)
        self.downsample = (
            nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU(True), nn.Conv2d(cin, cout, 1, bias=False))
            if cin != cout else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.conv1(F.relu(self.bn1(x)))
        b = self.conv2(F.relu(self.bn2(a)))
        c = self.conv3(F.relu(self.bn3(b)))
        skip = x if self.downsample is None else self.downsample(x)
        return torch.cat((a, b, c), 1) + skip


class _HourGlass(nn.Module):
    """Depth-``depth`` hourglass of ``width``-channel blocks (256); child names follow the official checkpoint."""

    def __init__(self, depth: int, first: bool, width: int = 256) -> None:
        super().__init__()
        self.depth = depth
        self.coordconv = _CoordConv(width, width, 1, 1, 0, boundary=not first)
        for level in range(depth, 0, -1):
            self.add_module(f"b1_{level}", _ConvBlock(width, width))
            self.add_module(f"b2_{level}", _ConvBlock(width, width))
        self.add_module("b2_plus_1", _ConvBlock(width, width))
        for level in range(1, depth + 1):
            self.add_module(f"b3_{level}", _ConvBlock(width, width))

    def _level(self, level: int, x: torch.Tensor) -> torch.Tensor:
        upper = self._modules[f"b1_{level}"](x)
        low = self._modules[f"b2_{level}"](F.avg_pool2d(x, 2, stride=2))
        low = self._level(level - 1, low) if level > 1 else self._modules["b2_plus_1"](low)
        low = self._modules[f"b3_{level}"](low)
        return upper + F.interpolate(low, scale_factor=2, mode="nearest")

    def forward(self, x: torch.Tensor, heat: torch.Tensor | None) -> torch.Tensor:
        return self._level(self.depth, self.coordconv(x, heat))


class AWingFAN(nn.Module):
    """Stacked-hourglass landmark network with the official ``alignment_WFLW_4HG.pth`` key names.

    Args:
        num_stacks: Hourglass stacks (4 in the release file).
        num_points: Landmark heatmaps per stack (98 for WFLW); one boundary heatmap is added.
        width: Channels of the hourglasses (256).
        stem: Channels of the first convolution (64; the stem doubles it once).
        depth: Levels of each hourglass (4).

    Input: (N, 3, 256, 256) BGR in [0, 1]. Output of :meth:`forward`: one (N, num_points + 1, 64, 64)
    tensor per stack; the last one is used and its final channel is the boundary map.
    """

    def __init__(self, num_stacks: int = 4, num_points: int = 98, *, width: int = 256, stem: int = 64,
                 depth: int = 4) -> None:
        super().__init__()
        self.num_stacks, self.num_points = num_stacks, num_points
        w = width
        self.conv1 = _CoordConv(3, stem, 7, 2, 3, boundary=False)
        self.bn1 = nn.BatchNorm2d(stem)
        self.conv2 = _ConvBlock(stem, 2 * stem)
        self.conv3 = _ConvBlock(2 * stem, 2 * stem)
        self.conv4 = _ConvBlock(2 * stem, w)
        for i in range(num_stacks):
            self.add_module(f"m{i}", _HourGlass(depth, first=i == 0, width=w))
            self.add_module(f"top_m_{i}", _ConvBlock(w, w))
            self.add_module(f"conv_last{i}", nn.Conv2d(w, w, 1))
            self.add_module(f"bn_end{i}", nn.BatchNorm2d(w))
            self.add_module(f"l{i}", nn.Conv2d(w, num_points + 1, 1))
            if i < num_stacks - 1:
                self.add_module(f"bl{i}", nn.Conv2d(w, w, 1))
                self.add_module(f"al{i}", nn.Conv2d(num_points + 1, w, 1))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Heatmaps of every stack, each (N, num_points + 1, H/4, W/4)."""
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.avg_pool2d(self.conv2(x), 2, stride=2)
        features = self.conv4(self.conv3(x))
        heat: torch.Tensor | None = None
        outs: list[torch.Tensor] = []
        for i in range(self.num_stacks):
            y = self._modules[f"top_m_{i}"](self._modules[f"m{i}"](features, heat))
            y = F.relu(self._modules[f"bn_end{i}"](self._modules[f"conv_last{i}"](y)))
            heat = self._modules[f"l{i}"](y)
            outs.append(heat)
            if i < self.num_stacks - 1:
                features = features + self._modules[f"bl{i}"](y) + self._modules[f"al{i}"](heat)
        return outs


# ----------------------------------------------------------------------------- decoding
def decode_heatmaps(heatmaps: np.ndarray) -> np.ndarray:
    """Heatmaps (B, N, H, W) -> points (B, N, 2) (x, y) in heatmap pixels, as upstream decodes them.

    Per heatmap: the argmax cell, shifted by ``0.25 * sign`` of the difference of its right/left and
    lower/upper neighbours, plus 0.5 (cell centre). Upstream's edge handling is kept so results match:
    if ANY point's argmax lies in the last row the lower neighbour of EVERY point is the last cell of
    its map, and if any lies in the first row (or at the first cell of the second row) the upper
    neighbour of every point is the first cell; a left neighbour before the first cell wraps to the
    last cell (numpy index -1). A right neighbour past the last cell (where upstream raises
    IndexError) is clamped to the last cell.
    """
    hm = np.asarray(heatmaps)
    b, n, h, w = hm.shape
    hw = h * w
    flat = hm.reshape(b * n, hw)
    idx = flat.argmax(axis=1)
    rows = np.arange(b * n)
    pts = np.stack((idx % w, idx // w), axis=1).astype(np.float64)
    right = flat[rows, np.minimum(idx + 1, hw - 1)]
    left = flat[rows, (idx - 1) % hw]
    below = flat[rows, hw - 1] if np.any(idx + w >= hw) else flat[rows, idx + w]
    above = flat[rows, 0] if np.any(idx - w <= 0) else flat[rows, idx - w]
    pts += 0.25 * np.sign(np.stack((right - left, below - above), axis=1))
    pts += 0.5
    return pts.reshape(b, n, 2)


def _crop(image: np.ndarray, box: Sequence[float] | None) -> tuple[np.ndarray, int, int]:
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ImageError(f"expected an (H, W, 3) image, got shape {arr.shape}; convert it to RGB first")
    if arr.dtype != np.uint8:
        raise ImageError(f"expected a uint8 image, got {arr.dtype}; scale it to 0..255 and cast to uint8")
    if box is None:
        return arr, 0, 0
    x1, y1, x2, y2 = (int(v) for v in box[:4])  # upstream truncates the float box with int()
    crop = arr[y1:y2, x1:x2]
    if crop.shape[0] < 1 or crop.shape[1] < 1:
        raise ImageError(f"the face box {tuple(box[:4])} lies outside the {arr.shape[1]}x{arr.shape[0]} image")
    return crop, x1, y1


def network_input(crop: np.ndarray, *, channels: str = "rgb") -> torch.Tensor:
    """The (1, 3, 256, 256) network input for a face crop: bilinear resize, BGR order, ``/ 255``."""
    import cv2

    img = cv2.resize(np.ascontiguousarray(crop), (256, 256))
    if channels == "rgb":
        img = img[..., ::-1]
    elif channels != "bgr":
        raise ValueError(f"channels must be 'rgb' or 'bgr', got {channels!r}")
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).float().div(255.0)[None]


def get_landmarks(
    net: AWingFAN,
    image: np.ndarray,
    box: Sequence[float] | None = None,
    *,
    channels: str = "rgb",
) -> np.ndarray:
    """98 landmarks of the face in ``box``, in ``image`` pixels (upstream ``FAN.get_landmarks`` + offset).

    Args:
        net: A loaded :class:`AWingFAN` (eval mode).
        image: (H, W, 3) uint8 image. SadTalker passes RGB, which the network receives as BGR.
        box: (x1, y1, x2, y2[, ...]) face box; it is truncated to ints and sliced out as upstream
            does (no margin). None runs on the whole image.
        channels: ``"rgb"`` (flipped to BGR, upstream's behaviour) or ``"bgr"`` (used as is).

    Returns:
        (98, 2) float64 (x, y).

    Raises:
        ImageError: not an (H, W, 3) uint8 image, or an empty box.
    """
    crop, ox, oy = _crop(image, box)
    h, w = crop.shape[:2]
    param = next(net.parameters())
    x = network_input(crop, channels=channels).to(device=param.device, dtype=param.dtype)
    with torch.inference_mode():
        heat = net(x)[-1][:, :-1].float().cpu().numpy()
    pts = decode_heatmaps(heat)[0]
    hh, hw = heat.shape[-2:]
    pts *= (w / hw, h / hh)
    pts += (ox, oy)
    return pts


#: For each iBUG-68 point, the WFLW-98 indices averaged to make it (one or two). Jaw: every other
#: contour point 0, 2, ..., 32; brows: 33 and the upper/lower brow-contour pairs (34+41, 35+40,
#: 36+39, 37+38) and (42+50, 43+49, 44+48, 45+47), 46; nose 51-59; eyes 60 61 63 64 65 67 and
#: 68 69 71 72 73 75 (the eye-centre points 96, 97 and the 62/66/70/74 mid-lid points are dropped);
#: mouth 76-95.
WFLW98_TO_IBUG68: tuple[tuple[int, ...], ...] = (
    *((i,) for i in range(0, 33, 2)),
    (33,), (34, 41), (35, 40), (36, 39), (37, 38),
    (42, 50), (43, 49), (44, 48), (45, 47), (46,),
    *((i,) for i in range(51, 60)),
    (60,), (61,), (63,), (64,), (65,), (67,),
    (68,), (69,), (71,), (72,), (73,), (75,),
    *((i,) for i in range(76, 96)),
)  # fmt: skip


def landmarks_98_to_68(points: np.ndarray) -> np.ndarray:
    """WFLW-98 points (98, 2) -> iBUG-68 points (68, 2) float32 (:data:`WFLW98_TO_IBUG68`)."""
    p = np.asarray(points, dtype=np.float64)
    if p.shape != (98, 2):
        raise ValueError(f"need (98, 2) landmarks, got {p.shape}")
    out = np.empty((68, 2), dtype=np.float32)
    for j, src in enumerate(WFLW98_TO_IBUG68):
        out[j] = p[src[0]] if len(src) == 1 else (p[src[0]] + p[src[1]]) / 2
    return out


# ----------------------------------------------------------------------------- loading
def load_awing(
    source: str | os.PathLike[str] | io.BytesIO | Mapping[str, Any],
    device: str | torch.device = "cpu",
) -> AWingFAN:
    """Build :class:`AWingFAN` (4 stacks, 98 points) and load an official checkpoint strictly.

    Args:
        source: Path or buffer of ``alignment_WFLW_4HG.pth``, or an in-memory state dict. The file
            may hold ``{'state_dict': ...}`` (the release layout) or a flat state dict; a leading
            ``module.`` on keys is stripped.
        device: Torch device.

    Raises:
        WeightsMissingError: the path does not exist (names the file and its URL).
        ModelLoadError: unreadable/corrupt file, or keys/shapes that do not match.
    """
    from talkinghead.face.checkpoints import load_into, load_state_dict_file, strip_module_prefix

    label = "<state dict>" if isinstance(source, Mapping) else str(getattr(source, "name", source))[:200]
    if isinstance(source, (str, os.PathLike)) and not Path(source).is_file():
        raise missing_file_error(catalog.entry(AWING_WEIGHTS_NAME), source)
    state = source if isinstance(source, Mapping) else load_state_dict_file(source, "AWing FAN")
    if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]
    if isinstance(state, Mapping):
        state = OrderedDict(strip_module_prefix(state))
    net = AWingFAN()
    load_into(net, state, "AWing FAN (4 stacks, 98 points)", label)
    return net.to(device).eval()


class AWingAligner:
    """AWing FAN with weights resolution and lazy loading.

    Args:
        weights_path: ``alignment_WFLW_4HG.pth``; default: the weights cache entry ``awing-wflw``.
        device: Torch device string.
        cache_dir: Weights cache directory for the registry lookup (None: the default cache).
    """

    def __init__(
        self,
        *,
        weights_path: str | os.PathLike[str] | None = None,
        device: str = "cpu",
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.weights_path = None if weights_path is None else Path(weights_path)
        self.device = device
        self.cache_dir = cache_dir
        self._net: AWingFAN | None = None

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Any], **kwargs: Any) -> AWingAligner:
        """An aligner loaded from an in-memory state dict (tests, converted weights)."""
        al = cls(**kwargs)
        al._net = load_awing(state, al.device)
        return al

    def resolve_weights(self) -> Path:
        """The checkpoint path to load (``weights_path``, else the weights cache).

        Raises:
            WeightsMissingError: the file is not there (names the file, URL and download command).
        """
        return resolve(catalog.entry(AWING_WEIGHTS_NAME), self.weights_path, cache_dir=self.cache_dir)

    @property
    def net(self) -> AWingFAN:
        """The loaded network (loads on first use)."""
        self.load()
        assert self._net is not None
        return self._net

    def load(self) -> None:
        """Load the network (idempotent). Raises WeightsMissingError / ModelLoadError."""
        if self._net is None:
            self._net = load_awing(self.resolve_weights(), self.device)

    def close(self) -> None:
        """Release the network."""
        self._net = None

    def landmarks(self, image: np.ndarray, box: Sequence[float] | None = None, *, channels: str = "rgb") -> np.ndarray:
        """98 points of the face in ``box`` (see :func:`get_landmarks`)."""
        return get_landmarks(self.net, image, box, channels=channels)


class AWingLandmarks:
    """SadTalker landmark source: RetinaFace boxes + AWing FAN points mapped to 68 (upstream's path).

    Upstream passes the RGB image straight to RetinaFace (which was trained on BGR) with threshold
    0.97 and slices the box without margin; ``upstream_channels=True`` (default) reproduces that;
    ``False`` gives the detector the channel order it expects.

    Args:
        detector: A :class:`talkinghead.face.FaceDetector`-like object with ``detect_rows`` (default:
            RetinaFace ResNet-50 at 0.97, as SadTalker).
        aligner: An :class:`AWingAligner` (default: from the weights cache).
        upstream_channels: Feed the detector RGB as upstream does.
        device: Torch device for the default detector and aligner.
        cache_dir: Weights cache directory for the defaults.
    """

    def __init__(
        self,
        *,
        detector: Any = None,
        aligner: AWingAligner | None = None,
        upstream_channels: bool = True,
        device: str = "cpu",
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        if detector is None:
            from talkinghead.face.detector import FaceDetector

            detector = FaceDetector(model="resnet50", conf=0.97, device=device, cache_dir=cache_dir)
        self.detector = detector
        self.aligner = aligner or AWingAligner(device=device, cache_dir=cache_dir)
        self.upstream_channels = upstream_channels

    def load(self) -> None:
        """Load both networks; raises WeightsMissingError naming ``talkinghead weights download awing retinaface``."""
        try:
            if hasattr(self.detector, "load"):
                self.detector.load()
        except WeightsMissingError as exc:
            raise type(exc)(f"{exc} AWing landmarks need `{DOWNLOAD_HINT}`.",
                            list(exc.files)) from exc
        self.aligner.load()

    def detect(self, image: np.ndarray) -> list[Face]:
        """Faces in an (H, W, 3) uint8 RGB image, each with (68, 2) landmarks (highest score first)."""
        arr = np.asarray(image)
        _crop(arr, None)  # validates shape/dtype
        self.load()
        rows = self.detector.detect_rows(arr[..., ::-1] if self.upstream_channels else arr)
        faces: list[Face] = []
        for row in np.asarray(rows, dtype=np.float32).reshape(-1, 15):
            box = tuple(float(v) for v in row[:4])
            try:
                lm98 = self.aligner.landmarks(arr, box)
            except ImageError:  # box entirely outside the image
                continue
            faces.append(Face(box=box, score=float(row[4]), landmarks=landmarks_98_to_68(lm98)))
        return faces

    def close(self) -> None:
        """Release both networks."""
        if hasattr(self.detector, "close"):
            self.detector.close()
        self.aligner.close()
