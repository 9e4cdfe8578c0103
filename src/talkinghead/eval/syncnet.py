"""SyncNet (Chung & Zisserman, 2016) for LSE-C / LSE-D, with the user's weights.

The network is written here from the published architecture and loads the official checkpoint
(``syncnet_v2.model``: a ``torch.save``\\ d state dict whose keys are ``netcnnaud.*``,
``netfcaud.*``, ``netcnnlip.*``, ``netfclip.*``; BatchNorm statistics included). No weights ship
with talkinghead or on PyPI: pass the file you obtained to ``talkinghead eval --syncnet PATH``.

The computation (as in ``syncnet_python`` and the LSE scripts of Wav2Lip), documented in
``docs/eval.md``:

1. The video is sampled at 25 fps (nearest frame); each frame's face is cropped as the reference
   pipeline does (box side ``s`` = half the larger side of the face box, smoothed by a 13-frame
   median; crop ``[y - s, y + 1.8 s] × [x - 1.4 s, x + 1.4 s]`` with the frame padded by grey 110;
   resized to 224×224), BGR, pixel values 0–255 as they are.
2. The audio at 16 kHz mono, as 16-bit integers, gives 13 MFCCs every 10 ms
   (``python_speech_features.mfcc`` defaults).
3. For every video position ``v`` (up to ``min(frames, samples // 640) - 5``): frames ``v..v+4``
   go through the lip stream and MFCC columns ``4v..4v+19`` (0.2 s) through the audio stream,
   each giving a 1024-d feature.
4. For each offset ``k`` in ``-15..15``, the Euclidean distance between video feature ``v`` and
   audio feature ``v + k`` (a zero vector past either end) is averaged over ``v``: ``mean_dist[k]``.
5. **LSE-D** = ``min_k mean_dist[k]``; **LSE-C** = ``median_k mean_dist[k] - LSE-D``; the AV offset
   is ``-argmin_k`` (frames; positive when the audio leads).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from ..errors import MissingDependencyError, ModelLoadError, WeightsMissingError

log = logging.getLogger(__name__)

__all__ = [
    "SYNCNET_FPS",
    "VSHIFT",
    "build_syncnet",
    "load_syncnet",
    "mfcc_features",
    "sync_offsets",
    "syncnet_crops",
    "syncnet_scores",
]

SYNCNET_FPS = 25
SAMPLE_RATE = 16000
VSHIFT = 15
CROP_SCALE = 0.40
EMBEDDING = 1024

# (kind, arguments): a "conv" entry becomes Conv → BatchNorm → ReLU (three modules), a "pool" entry
# one max-pool; this keeps the module indices, hence the checkpoint's key names, of the original.
_AUDIO_LAYERS: Sequence[tuple[str, dict[str, Any]]] = (
    ("conv", dict(cin=1, cout=64, k=(3, 3), s=(1, 1), p=(1, 1))),
    ("pool", dict(k=(1, 1), s=(1, 1))),
    ("conv", dict(cin=64, cout=192, k=(3, 3), s=(1, 1), p=(1, 1))),
    ("pool", dict(k=(3, 3), s=(1, 2))),
    ("conv", dict(cin=192, cout=384, k=(3, 3), s=(1, 1), p=(1, 1))),
    ("conv", dict(cin=384, cout=256, k=(3, 3), s=(1, 1), p=(1, 1))),
    ("conv", dict(cin=256, cout=256, k=(3, 3), s=(1, 1), p=(1, 1))),
    ("pool", dict(k=(3, 3), s=(2, 2))),
    ("conv", dict(cin=256, cout=512, k=(5, 4), s=(1, 1), p=(0, 0))),
)
_LIP_LAYERS: Sequence[tuple[str, dict[str, Any]]] = (
    ("conv", dict(cin=3, cout=96, k=(5, 7, 7), s=(1, 2, 2), p=(0, 0, 0))),
    ("pool", dict(k=(1, 3, 3), s=(1, 2, 2))),
    ("conv", dict(cin=96, cout=256, k=(1, 5, 5), s=(1, 2, 2), p=(0, 1, 1))),
    ("pool", dict(k=(1, 3, 3), s=(1, 2, 2), p=(0, 1, 1))),
    ("conv", dict(cin=256, cout=256, k=(1, 3, 3), s=(1, 1, 1), p=(0, 1, 1))),
    ("conv", dict(cin=256, cout=256, k=(1, 3, 3), s=(1, 1, 1), p=(0, 1, 1))),
    ("conv", dict(cin=256, cout=256, k=(1, 3, 3), s=(1, 1, 1), p=(0, 1, 1))),
    ("pool", dict(k=(1, 3, 3), s=(1, 2, 2))),
    ("conv", dict(cin=256, cout=512, k=(1, 6, 6), s=(1, 1, 1), p=(0, 0, 0))),
)


def _torch():
    try:
        import torch
    except ImportError as exc:
        raise MissingDependencyError("torch", "syncnet", "SyncNet LSE scores") from exc
    return torch


def _stack(layers: Sequence[tuple[str, dict[str, Any]]], dims: int):
    nn = _torch().nn
    conv, norm, pool = (
        (nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d) if dims == 2 else (nn.Conv3d, nn.BatchNorm3d, nn.MaxPool3d)
    )
    modules = []
    for kind, a in layers:
        if kind == "conv":
            modules += [
                conv(a["cin"], a["cout"], kernel_size=a["k"], stride=a["s"], padding=a["p"]),
                norm(a["cout"]),
                nn.ReLU(inplace=True),
            ]
        else:
            modules.append(pool(kernel_size=a["k"], stride=a["s"], padding=a.get("p", 0)))
    return nn.Sequential(*modules)


def _head(embedding: int):
    nn = _torch().nn
    return nn.Sequential(nn.Linear(512, 512), nn.BatchNorm1d(512), nn.ReLU(), nn.Linear(512, embedding))


def build_syncnet(embedding: int = EMBEDDING):
    """An untrained SyncNet: ``.audio(mfcc (N, 1, 13, 20))``, ``.lips(frames (N, 3, 5, 224, 224))`` → (N, 1024)."""
    torch = _torch()

    class SyncNet(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.netcnnaud = _stack(_AUDIO_LAYERS, 2)
            self.netfcaud = _head(embedding)
            self.netcnnlip = _stack(_LIP_LAYERS, 3)
            self.netfclip = _head(embedding)

        def audio(self, x):
            return self.netfcaud(self.netcnnaud(x).flatten(1))

        def lips(self, x):
            return self.netfclip(self.netcnnlip(x).flatten(1))

    return SyncNet()


def load_syncnet(path: str | os.PathLike, device: str = "cpu"):
    """Load SyncNet from an official-format checkpoint (a state dict; ``__S__.`` prefixes are accepted).

    Raises:
        WeightsMissingError: no file there.
        ModelLoadError: not a SyncNet checkpoint (unreadable, missing or misshapen tensors).
    """
    torch = _torch()
    if not os.path.isfile(path):
        raise WeightsMissingError(
            f"SyncNet weights not found at {path}. talkinghead does not ship them; download syncnet_v2.model "
            "from the SyncNet authors and pass its path with --syncnet",
            [os.fspath(path)],
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a file that is not a checkpoint
        raise ModelLoadError(f"{path} is not a readable SyncNet checkpoint ({type(exc).__name__}: {exc})") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ModelLoadError(f"{path} does not hold a state dict (got {type(state).__name__})")
    state = {k.removeprefix("__S__."): v for k, v in state.items()}
    model = build_syncnet()
    own = model.state_dict()
    wanted = {k for k in own if not k.endswith("num_batches_tracked")}
    missing = sorted(wanted - set(state))
    unexpected = sorted(k for k in set(state) - set(own))
    bad = sorted(k for k in wanted & set(state) if tuple(state[k].shape) != tuple(own[k].shape))
    if missing or unexpected or bad:
        detail = "; ".join(
            part
            for part in (
                f"missing {len(missing)} (e.g. {missing[0]})" if missing else "",
                f"unexpected {len(unexpected)} (e.g. {unexpected[0]})" if unexpected else "",
                f"wrong shape: {bad[0]} {tuple(state[bad[0]].shape)} vs {tuple(own[bad[0]].shape)}" if bad else "",
            )
            if part
        )
        raise ModelLoadError(f"{path} is not a SyncNet (syncnet_v2) checkpoint: {detail}")
    model.load_state_dict({**own, **{k: state[k] for k in wanted}})
    return model.to(device).eval()


def mfcc_features(samples: np.ndarray) -> np.ndarray:
    """13 MFCCs every 10 ms of 16 kHz mono audio (float in [-1, 1]), as (13, T), computed on 16-bit values."""
    try:
        import python_speech_features
    except ImportError as exc:
        raise MissingDependencyError("python_speech_features", "syncnet", "SyncNet LSE scores") from exc
    pcm = np.clip(np.round(np.asarray(samples, np.float64) * 32768.0), -32768, 32767).astype(np.int16)
    return np.asarray(python_speech_features.mfcc(pcm, SAMPLE_RATE), np.float64).T


def sync_offsets(video_features: np.ndarray, audio_features: np.ndarray, vshift: int = VSHIFT) -> dict[str, Any]:
    """LSE-D, LSE-C and the AV offset from per-position features (steps 4–5 of the module doc)."""
    v = np.asarray(video_features, np.float64)
    a = np.asarray(audio_features, np.float64)
    padded = np.concatenate([np.zeros((vshift, a.shape[1])), a, np.zeros((vshift, a.shape[1]))])
    span = 2 * vshift + 1
    dists = np.empty((len(v), span))
    for i in range(len(v)):
        # torch's pairwise_distance adds eps = 1e-6 to the difference
        dists[i] = np.linalg.norm(v[i][None, :] - padded[i : i + span] + 1e-6, axis=1)
    mean = dists.mean(axis=0)
    best = int(np.argmin(mean))
    return {
        "lse_d": float(mean[best]),
        "lse_c": float(np.median(mean) - mean[best]),
        "offset_frames": vshift - best,
        "mean_distance_by_offset": {str(vshift - k): float(d) for k, d in enumerate(mean)},
        "positions": len(v),
    }


def syncnet_crops(frames: Iterator[np.ndarray], fps: float, boxes: np.ndarray) -> np.ndarray:
    """Face crops at 25 fps, 224×224 BGR uint8, from frames at ``fps`` and per-frame face boxes (step 1)."""
    import cv2
    from scipy.signal import medfilt

    n = len(boxes)
    ok = np.isfinite(boxes).all(axis=1)
    if not ok.any():
        return np.zeros((0, 224, 224, 3), np.uint8)
    idx = np.arange(n)
    filled = np.stack([np.interp(idx, idx[ok], boxes[ok, j]) for j in range(4)], axis=1)
    size = medfilt(np.maximum(filled[:, 3] - filled[:, 1], filled[:, 2] - filled[:, 0]) / 2, 13)
    cy = medfilt((filled[:, 1] + filled[:, 3]) / 2, 13)
    cx = medfilt((filled[:, 0] + filled[:, 2]) / 2, 13)
    count = int(np.floor(n / fps * SYNCNET_FPS + 1e-9))
    wanted = np.minimum(np.round(np.arange(count) * fps / SYNCNET_FPS).astype(int), n - 1)
    out = np.empty((count, 224, 224, 3), np.uint8)
    k = 0
    for i, frame in enumerate(frames):
        while k < count and wanted[k] == i:
            s = float(size[i])
            pad = int(s * (1 + 2 * CROP_SCALE))
            bgr = np.pad(frame[:, :, ::-1], ((pad, pad), (pad, pad), (0, 0)), constant_values=110)
            y, x = cy[i] + pad, cx[i] + pad
            face = bgr[
                int(y - s) : int(y + s * (1 + 2 * CROP_SCALE)),
                int(x - s * (1 + CROP_SCALE)) : int(x + s * (1 + CROP_SCALE)),
            ]
            out[k] = cv2.resize(face, (224, 224))
            k += 1
        if k >= count:
            break
    return out[:k]


def features(
    model, crops: np.ndarray, mfcc: np.ndarray, n_samples: int, *, batch: int = 20, device: str = "cpu"
) -> tuple[np.ndarray, np.ndarray]:
    """Lip and audio features for every position (step 3)."""
    torch = _torch()
    positions = min(len(crops), n_samples // (SAMPLE_RATE // SYNCNET_FPS)) - 5
    positions = min(positions, (mfcc.shape[1] - 20) // 4 + 1)  # every audio window whole
    if positions < 1:
        raise ValueError("the video is too short for SyncNet (at least 9 frames at 25 fps)")
    lips, audio = [], []
    with torch.inference_mode():
        for start in range(0, positions, batch):
            stop = min(positions, start + batch)
            clip = np.stack([crops[i : i + 5] for i in range(start, stop)])  # (B, 5, H, W, 3)
            x = torch.from_numpy(clip).to(device=device, dtype=torch.float32).permute(0, 4, 1, 2, 3)
            lips.append(model.lips(x).cpu().numpy())
            m = np.stack([mfcc[:, 4 * i : 4 * i + 20] for i in range(start, stop)])[:, None]
            audio.append(model.audio(torch.from_numpy(m).to(device=device, dtype=torch.float32)).cpu().numpy())
    return np.concatenate(lips), np.concatenate(audio)


def syncnet_scores(video, speech, curves, weights: str | os.PathLike, *, device: str = "cpu") -> dict[str, Any]:
    """LSE-D, LSE-C and the AV offset of ``video`` (see the module doc)."""
    from .measure import read_frames

    model = load_syncnet(weights, device)
    fps, frames = read_frames(video)
    crops = syncnet_crops(frames, fps, curves.boxes)
    audio = speech.resample(SAMPLE_RATE).samples
    mfcc = mfcc_features(audio)
    lip_feats, audio_feats = features(model, crops, mfcc, len(audio), device=device)
    scores = sync_offsets(lip_feats, audio_feats)
    log.info("SyncNet: LSE-D %.3f, LSE-C %.3f, offset %d", scores["lse_d"], scores["lse_c"], scores["offset_frames"])
    return scores
