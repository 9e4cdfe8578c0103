"""SadTalker as a source of the ``bank`` animator (see :mod:`talkinghead.stages.bankable`).

Parameters are the 15 driving 3-D keypoints (45 numbers per frame): what the generator consumes,
computed from audio by the cheap networks only — ExpNet and PoseVAE (expression + head pose
coefficients), MappingNet and the keypoint transform. Bank frames are the generator's crops;
composing pastes them back (full modes) or resizes them. Playing needs the source coefficients,
the canonical keypoints and (full modes) the portrait and paste box — not the generator, the
keypoint detector or ReconNet, which are loaded only to build a bank.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import ConfigError
from ...values import Audio

__all__ = ["SadTalkerBankSupport", "SadTalkerPlay"]

#: Bump when the parameters or the rendering of keypoints change (invalidates cached banks).
BANK_VERSION = 1
NUM_KP = 15
#: Frames per MappingNet call when computing parameters.
PARAM_BATCH = 256
#: Half of the Savitzky-Golay window applied to the pose (13 frames).
SAVGOL_HALF = 6


@dataclass(frozen=True, eq=False)
class SadTalkerPlay:
    """What playing a SadTalker bank needs (see :meth:`SadTalkerBankSupport.bank_restore`)."""

    source_coeff: np.ndarray  # (73,)
    kp_canonical: Any  # (1, 15, 3) torch tensor on the animator's device
    out_size: tuple[int, int]
    paster: Any  # face.paste.BoxPaster in full modes, else None


class SadTalkerBankSupport:
    """Mixin of :class:`~.backend.SadTalkerAnimator` implementing :class:`~talkinghead.stages.BankableAnimator`."""

    _nets: dict[str, Any] | None
    _light_nets: dict[str, Any] | None
    _light_lock: threading.Lock

    # -- what a bank depends on ------------------------------------------------------------------
    def bank_fingerprint(self) -> dict[str, Any]:
        """Renderer resolution, crop mode, landmarks source, precision, and the weight files' identity."""
        return {
            "animator": "sadtalker",
            "version": BANK_VERSION,
            "size": self.size,
            "preprocess": self.preprocess,
            "landmarks": self.landmarks,
            "bf16": bool(self.bf16),
            "fp16": bool(self.fp16),
            "runtime": self.runtime,
            "weights": [[p.name, st.st_size, st.st_mtime_ns] for p in self._weight_files() if (st := _stat(p))],
        }

    def _weight_files(self) -> list[Path]:
        from . import checkpoint as ck

        wdir = Path(self.weights_dir) if self.weights_dir is not None else ck.default_weights_dir()
        renderer = Path(self.checkpoint) if self.checkpoint is not None else ck.renderer_path(wdir, self.size, None)
        coeff_nc = 73 if self.full_mode else 70
        mapping = Path(self.mapping_checkpoint) if self.mapping_checkpoint is not None else wdir / ck.MAPPING[coeff_nc]
        return [renderer, mapping]

    # -- build side ------------------------------------------------------------------------------
    def bank_state(self, prepared: Any) -> dict[str, np.ndarray]:
        import torch

        kc = prepared.kp_canonical
        if kc is None:  # kp_once off: the detector once here
            self.load()
            with self._grad_ctx():
                kc = self._nets["kp"](prepared.source).float()
        state = {
            "source_coeff": np.asarray(prepared.source_coeff, np.float32).reshape(-1),
            "kp_canonical": kc.detach().to("cpu", torch.float32).numpy().reshape(1, NUM_KP, 3),
            "out_size": np.asarray(prepared.out_size, np.int64),
        }
        if prepared.paster is not None:
            state["portrait"] = np.ascontiguousarray(prepared.paster.full)
            state["paste_box"] = np.asarray(prepared.paster.orig_box, np.int64)
        return state

    def bank_render(self, prepared: Any, params: np.ndarray) -> np.ndarray:
        """Generator crops (N, S, S, 3) for (N, 45) driving keypoints, in batches of ``batch_size``."""
        import torch

        self.load()
        assert self._nets is not None
        params = np.asarray(params, np.float32).reshape(-1, NUM_KP, 3)
        src_sem, _, _ = self._render_inputs(prepared.source_coeff, np.zeros((1, 70), np.float32))
        gen, mapping = self._nets["gen"], self._nets["mapping"]
        out = []
        with self._grad_ctx(), self._autocast():
            kc = prepared.kp_canonical
            if kc is None:
                kc = self._nets["kp"](prepared.source).float()
            ks1, _ = self._posed_keypoints(mapping, kc, src_sem, src_sem[None], {})
            bs = self.batch_size if self.batched else 1
            for b0 in range(0, len(params), bs):
                kd = torch.from_numpy(np.ascontiguousarray(params[b0:b0 + bs])).to(self.device)
                ks = ks1.expand(len(kd), -1, -1)
                out.append(self._generate(gen, prepared, ks, kd))
        return np.concatenate(out) if out else np.zeros((0, self.size, self.size, 3), np.uint8)

    # -- play side ---------------------------------------------------------------------------------
    def bank_restore(self, state: dict[str, np.ndarray]) -> SadTalkerPlay:
        import torch

        try:
            coeff = np.asarray(state["source_coeff"], np.float32).reshape(-1)
            kc = np.asarray(state["kp_canonical"], np.float32).reshape(1, NUM_KP, 3)
            ow, oh = (int(v) for v in np.asarray(state["out_size"]).reshape(2))
        except (KeyError, ValueError) as exc:
            raise ConfigError(f"not a SadTalker bank state ({exc}); rebuild the bank") from exc
        if coeff.shape[0] < (73 if self.full_mode else 70) or not np.isfinite(coeff).all() or ow < 1 or oh < 1:
            raise ConfigError("the SadTalker bank state does not fit this configuration; rebuild the bank")
        paster = None
        if self.full_mode:
            if "portrait" not in state or "paste_box" not in state:
                raise ConfigError(f"the bank was not built in a full mode; preprocess={self.preprocess!r} "
                                  "needs a bank built with the same mode")
            from ...face.paste import BoxPaster

            box = tuple(int(v) for v in np.asarray(state["paste_box"]).reshape(4))
            paster = BoxPaster(np.ascontiguousarray(state["portrait"]), box, self.paste_mode)
        return SadTalkerPlay(coeff, torch.from_numpy(kc).to(self.device), (ow, oh), paster)

    def bank_parameters(self, play: SadTalkerPlay, audio: Audio, *, fps: float) -> np.ndarray:
        """(T, 45) driving keypoints: ExpNet + PoseVAE + MappingNet + keypoint transform (no generator)."""
        nets = self._param_nets()
        return self._driving(nets, play, self._coefficients(nets, play.source_coeff, audio, fps=fps))

    def bank_parameter_stream(self, play: SadTalkerPlay, audio: Audio, *, fps: float) -> Iterator[np.ndarray]:
        """:meth:`bank_parameters` in two blocks, the first as soon as possible.

        Frame *i*'s keypoints need coefficients up to *i* + 13 (MappingNet's window), which need raw
        poses up to *i* + 19 (Savitzky-Golay), which come in 32-frame PoseVAE chunks. So the first
        block runs ExpNet and PoseVAE on the first 33 frames only (the reference frame and one chunk,
        with the clip's own blink sequence and latents) and yields the 14 frames they fix; the second
        runs the whole clip and yields the rest. The blocks together equal :meth:`bank_parameters`.
        """
        import torch

        from .audio import blink_sequence
        from .coeffnets import LATENT, SEQ_LEN
        from .mapping import SEMANTIC_RADIUS

        nets = self._param_nets()
        mels = self._mels(audio, fps)
        t = len(mels)
        head = 1 + SEQ_LEN
        first = head - SAVGOL_HALF - SEMANTIC_RADIUS
        if t < head + SEQ_LEN:  # short clip: one block
            yield self.bank_parameters(play, audio, fps=fps)
            return
        blink = blink_sequence(t, fps, seed=self.seed) if self.blink else None
        gen = torch.Generator()
        if self.seed is not None:
            gen.manual_seed(self.seed)
        chunks = -(-(t - 1) // SEQ_LEN)  # PoseVAE's draws for the whole clip, in its order
        z = [torch.randn(1, LATENT, generator=gen).numpy()[0] for _ in range(chunks)]
        coeffs = self._coefficients_from(nets, play.source_coeff, mels[:head],
                                         None if blink is None else blink[:head], z=z[:1])
        yield self._driving(nets, play, coeffs, limit=first)
        coeffs = self._coefficients_from(nets, play.source_coeff, mels, blink, z=z)
        yield self._driving(nets, play, coeffs)[first:]

    def _driving(self, nets: dict[str, Any], play: SadTalkerPlay, coeffs: np.ndarray,
                 limit: int | None = None) -> np.ndarray:
        """(T, 45) driving keypoints of (T, 70) coefficients (of the first ``limit`` frames only)."""
        src_sem, sem, free = self._render_inputs(play.source_coeff, coeffs)
        if limit is not None:
            sem, free = sem[:limit], {k: v[:limit] for k, v in free.items()}
        out = np.empty((len(sem), NUM_KP * 3), np.float32)
        with self._grad_ctx(), self._autocast():
            for b0 in range(0, len(sem), PARAM_BATCH):
                sl = slice(b0, b0 + PARAM_BATCH)
                _, kd = self._posed_keypoints(nets["mapping"], play.kp_canonical, src_sem, sem[sl],
                                              {k: v[sl] for k, v in free.items()})
                out[sl] = kd.float().reshape(len(kd), -1).cpu().numpy()
        return out

    def bank_compose(self, play: SadTalkerPlay, frames: np.ndarray) -> np.ndarray:
        return self._finish(play, frames)

    def _resolved_param_runtime(self) -> str:
        if self.param_runtime != "auto":
            return self.param_runtime
        return "onnx" if self.runtime == "torch" and _onnxruntime_installed() else self.runtime

    def _param_nets(self) -> dict[str, Any]:
        """ExpNet, PoseVAE and MappingNet: all of them when loaded, else only these three (play side)."""
        if self._nets is not None:
            return self._nets
        with self._light_lock:
            if self._light_nets is None:
                import torch

                from ...checkpoints import load_into
                from . import checkpoint as ck

                coeff = ck.load_coefficient_nets(size=self.size, weights_dir=self.weights_dir,
                                                 checkpoint=self.checkpoint)
                mpath = self._weight_files()[1]
                mapping = load_into(ck.build_mapping(73 if self.full_mode else 70),
                                    ck.section(ck.read_state(mpath), "mapping", mpath),
                                    what="mapping", source=mpath)
                dev = torch.device(self.device)
                light = {"exp": coeff["exp"].to(dev), "pose": coeff["pose"].to(dev), "mapping": mapping.to(dev)}
                self._use_runtime(light, self._resolved_param_runtime())
                self._light_nets = light
            return self._light_nets


def _onnxruntime_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("onnxruntime") is not None and importlib.util.find_spec("onnx") is not None


def _stat(path: Path) -> Any:
    try:
        return path.stat()
    except OSError:
        return None
