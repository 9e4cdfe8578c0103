"""SadTalker audio-to-coefficient networks: ExpNet, PoseVAE and the coefficient generator.

Written for this project; module and parameter names follow the official checkpoints
so that ``load_state_dict(strict=True)`` accepts their sub-dicts:

- :class:`ExpNet` = upstream ``SimpleWrapperV2`` (safetensors prefix ``audio2exp.``,
  legacy ``auido2exp_00300-model.pth['model']``).
- :class:`PoseVAE` = the inference part of upstream ``Audio2Pose`` (prefix
  ``audio2pose.``, legacy ``auido2pose_00140-model.pth['model']``): the audio encoder
  (``audio_encoder.audio_encoder.*``) and the CVAE decoder (``netG.decoder.*``). The
  official files also hold the training-only CVAE encoder (``netG.encoder.*``, 17
  tensor groups incl. its own ResUnet) and the motion discriminator
  (``netD_motion.*``). :func:`load_pose_vae` checks those two groups key by key and
  shape by shape against the upstream layout (built on the ``meta`` device, no memory)
  and then drops them; any other unexpected or missing key is an error.

This module imports torch at top level: import it only where torch is wanted (the
backend does so inside ``load()``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ...errors import ConfigError, ModelLoadError

__all__ = [
    "NUM_POSE_STYLES",
    "AudioEncoder",
    "ExpNet",
    "PoseVAE",
    "CoeffResult",
    "generate_coefficients",
    "load_exp_net",
    "load_pose_vae",
    "savgol_pose",
]

NUM_POSE_STYLES = 46
SEQ_LEN = 32
LATENT = 64


# --------------------------------------------------------------------------- blocks
class ConvBNReLU(nn.Module):
    """Conv2d + BatchNorm2d (+ input residual) + ReLU; keys ``conv_block.{0,1}``."""

    def __init__(self, cin: int, cout: int, kernel: int, stride, padding: int, residual: bool = False):
        super().__init__()
        self.conv_block = nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, padding), nn.BatchNorm2d(cout))
        self.act = nn.ReLU()
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv_block(x)
        if self.residual:
            out = out + x
        return self.act(out)


def _wav2lip_audio_stack(width: int = 32) -> nn.Sequential:
    """Wav2Lip's audio encoder; ``width`` is the first block's channels (32), doubled four times
    (output ``16 * width`` = 512 channels)."""
    a, b, c, d, e = width, 2 * width, 4 * width, 8 * width, 16 * width
    spec = [
        (1, a, 3, 1, 1, False),
        (a, a, 3, 1, 1, True),
        (a, a, 3, 1, 1, True),
        (a, b, 3, (3, 1), 1, False),
        (b, b, 3, 1, 1, True),
        (b, b, 3, 1, 1, True),
        (b, c, 3, 3, 1, False),
        (c, c, 3, 1, 1, True),
        (c, c, 3, 1, 1, True),
        (c, d, 3, (3, 2), 1, False),
        (d, d, 3, 1, 1, True),
        (d, e, 3, 1, 0, False),
        (e, e, 1, 1, 0, False),
    ]
    return nn.Sequential(*[ConvBNReLU(*s) for s in spec])


class ExpNet(nn.Module):
    """Audio -> 64 expression coefficients (upstream SimpleWrapperV2).

    Args:
        width: audio encoder width (32; the embedding has ``16 * width`` = 512 channels).
    """

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.audio_encoder = _wav2lip_audio_stack(width)
        self.mapping1 = nn.Linear(16 * width + 64 + 1, 64)

    def forward(self, mel: torch.Tensor, ref_exp: torch.Tensor, ratio: torch.Tensor) -> torch.Tensor:
        """Args: mel (N,1,80,16), ref_exp (N,64), ratio (N,1). Returns (N,64)."""
        x = self.audio_encoder(mel).reshape(mel.shape[0], -1)
        return self.mapping1(torch.cat([x, ref_exp.reshape(x.shape[0], -1), ratio.reshape(x.shape[0], -1)], 1))

    @torch.inference_mode()
    def predict(self, mels: np.ndarray, ref_exp: np.ndarray, ratio: np.ndarray, chunk: int = 10) -> np.ndarray:
        """Expression coefficients for a clip.

        Args:
            mels: (T, 80, 16) mel windows.
            ref_exp: (T, 64) reference expression per frame.
            ratio: (T,) or (T, 1) blink ratio.
            chunk: Frames per forward pass (upstream uses 10; frames do not interact).

        Returns:
            (T, 64) float32.
        """
        p = next(self.parameters())
        m = torch.as_tensor(np.asarray(mels, np.float32), device=p.device)[:, None]
        r = torch.as_tensor(np.asarray(ref_exp, np.float32), device=p.device)
        b = torch.as_tensor(np.asarray(ratio, np.float32).reshape(-1, 1), device=p.device)
        outs = [self(m[i : i + chunk], r[i : i + chunk], b[i : i + chunk]) for i in range(0, m.shape[0], chunk)]
        if not outs:
            return np.zeros((0, 64), np.float32)
        return torch.cat(outs).float().cpu().numpy()


class AudioEncoder(nn.Module):
    """Wav2Lip-style audio encoder of the pose net; keys ``audio_encoder.*``."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.audio_encoder = _wav2lip_audio_stack(width)

    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        """(B, S, 1, 80, 16) -> (B, S, 512)."""
        b, s = mels.shape[:2]
        # upstream stacks time-major (frame 0 of every batch item first)
        flat = mels.transpose(0, 1).reshape(b * s, *mels.shape[2:])
        emb = self.audio_encoder(flat)
        return emb.reshape(s, b, -1).transpose(0, 1)


class _ResidualConv(nn.Module):
    def __init__(self, cin: int, cout: int, stride) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.BatchNorm2d(cin),
            nn.ReLU(),
            nn.Conv2d(cin, cout, 3, stride, 1),
            nn.BatchNorm2d(cout),
            nn.ReLU(),
            nn.Conv2d(cout, cout, 3, padding=1),
        )
        self.conv_skip = nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_block(x) + self.conv_skip(x)


class _Upsample(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.upsample = nn.ConvTranspose2d(cin, cout, kernel_size=(2, 1), stride=(2, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.upsample(x)


class ResUnet(nn.Module):
    """2-D residual U-Net over (time, 6) with time strides of 2."""

    def __init__(self, channel: int = 1, filters: Sequence[int] = (32, 64, 128, 256)) -> None:
        super().__init__()
        f = filters
        self.input_layer = nn.Sequential(
            nn.Conv2d(channel, f[0], 3, padding=1), nn.BatchNorm2d(f[0]), nn.ReLU(), nn.Conv2d(f[0], f[0], 3, padding=1)
        )
        self.input_skip = nn.Sequential(nn.Conv2d(channel, f[0], 3, padding=1))
        self.residual_conv_1 = _ResidualConv(f[0], f[1], (2, 1))
        self.residual_conv_2 = _ResidualConv(f[1], f[2], (2, 1))
        self.bridge = _ResidualConv(f[2], f[3], (2, 1))
        self.upsample_1 = _Upsample(f[3], f[3])
        self.up_residual_conv1 = _ResidualConv(f[3] + f[2], f[2], 1)
        self.upsample_2 = _Upsample(f[2], f[2])
        self.up_residual_conv2 = _ResidualConv(f[2] + f[1], f[1], 1)
        self.upsample_3 = _Upsample(f[1], f[1])
        self.up_residual_conv3 = _ResidualConv(f[1] + f[0], f[0], 1)
        self.output_layer = nn.Sequential(nn.Conv2d(f[0], 1, 1, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.input_layer(x) + self.input_skip(x)
        x2 = self.residual_conv_1(x1)
        x3 = self.residual_conv_2(x2)
        x4 = self.upsample_1(self.bridge(x3))
        x6 = self.upsample_2(self.up_residual_conv1(torch.cat([x4, x3], 1)))
        x8 = self.upsample_3(self.up_residual_conv2(torch.cat([x6, x2], 1)))
        return self.output_layer(self.up_residual_conv3(torch.cat([x8, x1], 1)))


class PoseDecoder(nn.Module):
    """CVAE decoder: (ref pose, z + class bias, audio) -> 32 frames of pose motion."""

    def __init__(self, latent: int = LATENT, seq_len: int = SEQ_LEN, num_classes: int = NUM_POSE_STYLES, *,
                 audio_dim: int = 512, unet_filters: Sequence[int] = (32, 64, 128, 256)) -> None:
        super().__init__()
        self.seq_len = seq_len
        self.resunet = ResUnet(filters=unet_filters)
        self.MLP = nn.Sequential()
        self.MLP.add_module("L0", nn.Linear(latent + seq_len * 6 + 6, 128))
        self.MLP.add_module("A0", nn.ReLU())
        self.MLP.add_module("L1", nn.Linear(128, 192))
        self.MLP.add_module("sigmoid", nn.Sigmoid())
        self.pose_linear = nn.Linear(6, 6)
        self.linear_audio = nn.Linear(audio_dim, 6)
        self.classbias = nn.Parameter(torch.zeros(num_classes, latent))

    def forward(self, ref: torch.Tensor, z: torch.Tensor, style: torch.Tensor, audio_emb: torch.Tensor) -> torch.Tensor:
        """ref (B,6), z (B,64), style (B,) long, audio_emb (B,32,512) -> (B,32,6)."""
        b = z.shape[0]
        audio = self.linear_audio(audio_emb).reshape(b, -1)
        x = torch.cat([ref, z + self.classbias[style], audio], -1)
        x = self.MLP(x).reshape(b, 1, self.seq_len, -1)
        return self.pose_linear(self.resunet(x).squeeze(1))


class _Generator(nn.Module):
    def __init__(self, **decoder: object) -> None:
        super().__init__()
        self.decoder = PoseDecoder(**decoder)  # type: ignore[arg-type]


class PoseVAE(nn.Module):
    """Inference part of upstream Audio2Pose (audio encoder + CVAE decoder).

    Args:
        width: audio encoder width (32).
        unet_filters: channels of the decoder's residual U-Net ((32, 64, 128, 256)).
    """

    def __init__(self, width: int = 32, unet_filters: Sequence[int] = (32, 64, 128, 256)) -> None:
        super().__init__()
        self.audio_encoder = AudioEncoder(width)
        self.netG = _Generator(audio_dim=16 * width, unet_filters=tuple(unet_filters))

    @torch.inference_mode()
    def predict(
        self,
        mels: np.ndarray,
        ref_pose: np.ndarray,
        pose_style: int = 0,
        *,
        z: Sequence[np.ndarray] | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Head pose for a clip (before smoothing), upstream ``Audio2Pose.test``.

        Frame 0 is the reference; frames 1..T-1 run in chunks of 32 windows; a
        remainder re-encodes the last 32 windows (front-padded with the first
        embedding if fewer exist) and keeps the last outputs.

        Args:
            mels: (T, 80, 16) mel windows.
            ref_pose: (6,) reference pose (pitch, yaw, roll, tx, ty, tz).
            pose_style: Style id 0..45.
            z: One (64,) latent per chunk; drawn from ``generator`` when None.
            generator: torch generator for z (CPU); a fresh unseeded one when None.

        Returns:
            ``(pose (T, 6) float32, z list used)``.
        """
        if not 0 <= int(pose_style) < NUM_POSE_STYLES:
            raise ConfigError(f"pose_style must be in 0..{NUM_POSE_STYLES - 1}, got {pose_style}")
        mels = np.asarray(mels, np.float32)
        n = mels.shape[0] - 1
        div, rem = divmod(max(n, 0), SEQ_LEN)
        n_chunks = div + (1 if rem else 0)
        if z is None:
            gen = generator if generator is not None else torch.Generator()
            z = [torch.randn(1, LATENT, generator=gen).numpy()[0] for _ in range(n_chunks)]
        if len(z) < n_chunks:
            raise ValueError(f"need {n_chunks} latent vectors, got {len(z)}")
        parts = [np.zeros((1, 6), np.float32)]
        for i in range(div):
            parts.append(self.motion_block(mels[1 + i * SEQ_LEN : 1 + (i + 1) * SEQ_LEN], ref_pose, pose_style, z[i]))
        if rem:
            parts.append(self.motion_block(mels[1:][-SEQ_LEN:], ref_pose, pose_style, z[div])[-rem:])
        motion = np.concatenate(parts, 0)
        pose = np.asarray(ref_pose, np.float32).reshape(1, 6) + motion
        return pose.astype(np.float32), [np.asarray(v, np.float32).reshape(LATENT) for v in z[:n_chunks]]

    @torch.inference_mode()
    def motion_block(self, mels: np.ndarray, ref_pose: np.ndarray, pose_style: int, z: np.ndarray) -> np.ndarray:
        """Head motion (offsets from ``ref_pose``) of one block of up to :data:`SEQ_LEN` mel windows.

        A block of fewer windows is front-padded with its first embedding, as upstream does for a
        clip's last, partial block (keep the last rows of the result).
        """
        p = next(self.parameters())
        mel_t = torch.as_tensor(np.asarray(mels, np.float32), device=p.device)[None, :, None]  # 1,S,1,80,16
        ref = torch.as_tensor(np.asarray(ref_pose, np.float32).reshape(1, 6), device=p.device)
        style = torch.tensor([int(pose_style)], device=p.device)
        zt = torch.as_tensor(np.asarray(z, np.float32).reshape(1, LATENT), device=p.device)
        emb = self.audio_encoder(mel_t)
        if emb.shape[1] != SEQ_LEN:
            emb = torch.cat([emb[:, :1].repeat(1, SEQ_LEN - emb.shape[1], 1), emb], 1)
        return self.netG.decoder(ref, zt, style, emb)[0].float().cpu().numpy()


# ----------------------------------------------------------------- unused key groups
class _PoseEncoderLayout(nn.Module):
    """Layout of upstream's training-only CVAE encoder (for key/shape checks only)."""

    def __init__(self) -> None:
        super().__init__()
        self.resunet = ResUnet()
        self.MLP = nn.Sequential()
        self.MLP.add_module("L0", nn.Linear(192 + LATENT + SEQ_LEN * 6 + 6, 128))
        self.MLP.add_module("A0", nn.ReLU())
        self.linear_means = nn.Linear(128, LATENT)
        self.linear_logvar = nn.Linear(128, LATENT)
        self.linear_audio = nn.Linear(512, 6)
        self.classbias = nn.Parameter(torch.zeros(NUM_POSE_STYLES, LATENT))


class _ConvNormRelu1d(nn.Module):
    def __init__(self, cin: int, cout: int, k: int, s: int, p: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(cin, cout, k, s, p, bias=False)
        self.norm = nn.BatchNorm1d(cout)


class _DiscriminatorLayout(nn.Module):
    """Layout of upstream's pose-sequence discriminator (for key/shape checks only)."""

    def __init__(self) -> None:
        super().__init__()
        self.seq = nn.Sequential(
            _ConvNormRelu1d(6, 256, 4, 2, 1),
            _ConvNormRelu1d(256, 512, 4, 2, 1),
            _ConvNormRelu1d(512, 1024, 3, 1, 1),
            nn.Conv1d(1024, 1, 3, 1, 1),
        )


_UNUSED_GROUPS = {"netG.encoder.": _PoseEncoderLayout, "netD_motion.": _DiscriminatorLayout}


def _check_group(state: Mapping[str, torch.Tensor], prefix: str, layout: type[nn.Module]) -> None:
    with torch.device("meta"):
        expected = {prefix + k: tuple(v.shape) for k, v in layout().state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items() if k.startswith(prefix)}
    missing = [k for k in expected if k not in got and not k.endswith("num_batches_tracked")]
    extra = [k for k in got if k not in expected]
    wrong = [k for k in got if k in expected and got[k] != expected[k]]
    if missing or extra or wrong:
        raise ModelLoadError(
            f"PoseVAE checkpoint group {prefix!r} does not match the official layout "
            f"(missing {missing[:3]}, unexpected {extra[:3]}, wrong shape {wrong[:3]}); "
            "use an official SadTalker audio2pose checkpoint"
        )


def _to_tensors(state: Mapping[str, object]) -> dict[str, torch.Tensor]:
    return {k: v if isinstance(v, torch.Tensor) else torch.from_numpy(np.asarray(v)) for k, v in state.items()}


def _load_strict(model: nn.Module, state: Mapping[str, torch.Tensor], what: str) -> None:
    own = model.state_dict()
    state = dict(state)
    for k in own:  # old .pth files may lack num_batches_tracked; torch tolerates that
        if k.endswith("num_batches_tracked") and k not in state:
            state[k] = own[k]
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelLoadError(f"{what} checkpoint does not fit the official layout: {exc}") from exc


def load_exp_net(state: Mapping[str, object], device: str | torch.device = "cpu") -> ExpNet:
    """Build an :class:`ExpNet` from its state dict (``audio2exp.`` stripped), strict, eval mode."""
    model = ExpNet()
    _load_strict(model, _to_tensors(state), "audio2exp")
    return model.to(device).eval()


def load_pose_vae(state: Mapping[str, object], device: str | torch.device = "cpu") -> PoseVAE:
    """Build a :class:`PoseVAE` from the full Audio2Pose state dict (``audio2pose.`` stripped).

    The training-only groups ``netG.encoder.*`` and ``netD_motion.*`` are verified
    against the upstream layout and dropped; everything else loads strictly.
    """
    tensors = _to_tensors(state)
    for prefix, layout in _UNUSED_GROUPS.items():
        _check_group(tensors, prefix, layout)
    used = {k: v for k, v in tensors.items() if not k.startswith(tuple(_UNUSED_GROUPS))}
    model = PoseVAE()
    _load_strict(model, used, "audio2pose")
    return model.to(device).eval()


# ------------------------------------------------------------------ post-processing
def savgol_pose(pose: np.ndarray) -> np.ndarray:
    """Savitzky-Golay smoothing over time (window 13, order 2; shorter clips: odd <= T)."""
    from scipy.signal import savgol_filter

    t = pose.shape[0]
    window = 13 if t >= 13 else int((t - 1) / 2) * 2 + 1
    if window <= 2:  # polyorder 2 needs window >= 3: nothing to smooth
        return np.asarray(pose, np.float32).copy()
    return savgol_filter(np.asarray(pose, np.float32), window, 2, axis=0).astype(np.float32)


@dataclass(frozen=True)
class CoeffResult:
    """Output of :func:`generate_coefficients`.

    Attributes:
        coeffs: (T, 70) float32 = exp (64) || pose (6).
        blink: (T,) blink ratio used.
        z: The latent vector drawn or given for each pose chunk.
        raw_pose: (T, 6) pose before smoothing.
    """

    coeffs: np.ndarray
    blink: np.ndarray
    z: list[np.ndarray]
    raw_pose: np.ndarray


def _loop(seq: np.ndarray, n: int) -> np.ndarray:
    reps = -(-n // seq.shape[0])
    return np.concatenate([seq] * reps, 0)[:n]


def generate_coefficients(
    exp_net: ExpNet,
    pose_vae: PoseVAE,
    mels: np.ndarray,
    ref_coeff: np.ndarray,
    *,
    pose_style: int = 0,
    blink: np.ndarray | None = None,
    use_blink: bool = True,
    z: Sequence[np.ndarray] | None = None,
    generator: torch.Generator | None = None,
    ref_eyeblink: np.ndarray | None = None,
    ref_pose: np.ndarray | None = None,
) -> CoeffResult:
    """Audio -> SadTalker motion coefficients (upstream ``Audio2Coeff.generate``).

    Args:
        exp_net: Loaded ExpNet.
        pose_vae: Loaded PoseVAE.
        mels: (T, 80, 16) windows from :func:`..audio.mel_windows`.
        ref_coeff: Source coefficients, at least 70 values (exp 64 || pose 6).
        pose_style: 0..45; anything else raises ConfigError.
        blink: (T,) or (T,1) blink ratio; zeros when None or ``use_blink`` is False.
        use_blink: Upstream's ``use_blink`` flag (False zeroes the ratio).
        z: One latent (64,) per pose chunk, for determinism.
        generator: torch generator for z when ``z`` is None.
        ref_eyeblink: (N, >=64) reference-video coefficients whose exp (looped) replaces
            the reference expression; the blink ratio is then zero.
        ref_pose: (N, >=70 or 6) reference-video poses; ``ref_pose[t] - ref_pose[0]``
            (looped) is added to the predicted pose.

    Returns:
        A :class:`CoeffResult`.
    """
    if not 0 <= int(pose_style) < NUM_POSE_STYLES:
        raise ConfigError(f"pose_style must be in 0..{NUM_POSE_STYLES - 1}, got {pose_style}")
    mels = np.asarray(mels, np.float32)
    t = mels.shape[0]
    ref = np.asarray(ref_coeff, np.float32).reshape(-1)[:70]
    if ref.shape[0] != 70:
        raise ValueError("ref_coeff needs at least 70 values (exp 64 + pose 6)")
    ratio = np.zeros((t,), np.float32) if blink is None else np.asarray(blink, np.float32).reshape(-1)[:t]
    if not use_blink:
        ratio = np.zeros_like(ratio)
    ref_exp = np.repeat(ref[None, :64], t, 0)
    if ref_eyeblink is not None:
        ratio = np.zeros_like(ratio)
        ref_exp = _loop(np.asarray(ref_eyeblink, np.float32)[:, :64], t)
    if t == 0:
        return CoeffResult(np.zeros((0, 70), np.float32), ratio, [], np.zeros((0, 6), np.float32))
    exp = exp_net.predict(mels, ref_exp, ratio)
    raw_pose, zs = pose_vae.predict(mels, ref[64:70], pose_style, z=z, generator=generator)
    pose = savgol_pose(raw_pose)
    coeffs = np.concatenate([exp, pose], 1).astype(np.float32)
    if ref_pose is not None:
        rp = np.asarray(ref_pose, np.float32)
        rp = rp[:, 64:70] if rp.shape[1] >= 70 else rp[:, :6]
        rp = _loop(rp, t)
        coeffs[:, 64:70] += rp - rp[0:1]
    return CoeffResult(coeffs, ratio, zs, raw_pose)
