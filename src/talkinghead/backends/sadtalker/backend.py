"""The ``sadtalker`` animator backend: SadTalker, re-implemented and weight-compatible.

Pipeline per clip: 16 kHz audio -> mel windows at the requested fps -> ExpNet + PoseVAE
coefficients -> MappingNet -> driving 3D keypoints -> generator in batches -> (paste-back in
``full``/``extfull`` modes) -> :class:`~talkinghead.values.FrameChunk` stream.

Nothing heavy is imported at module level: torch, cv2 and the networks load in :meth:`load`.

Optimisation switches (all on by default; each can be turned off to measure it, see
``bench/bench_sadtalker.py``): ``batched`` (render ``batch_size`` frames per generator call),
``kp_once`` (keypoint detector once per portrait, not on every batch row), ``source_cache`` (the
generator's keypoint-independent source encoder once per portrait), ``weight_cache`` (spectral-norm
weights divided once), ``inference_mode``, ``channels_last``, ``paste_mode='fast'`` (feathered blend
instead of a Poisson ``seamlessClone`` per frame) and ``bf16`` (autocast; changes numerics).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ...errors import AudioError, ConfigError, MissingDependencyError, ModelLoadError
from ...stages.animator import ProgressCallback, frame_count
from ...stages.base import BackendBase
from ...values import Audio, FrameChunk, Portrait
from ...weights import WeightFile, catalog
from .bankable import SadTalkerBankSupport

log = logging.getLogger(__name__)

PREPROCESS_MODES = ("crop", "extcrop", "resize", "full", "extfull")
PASTE_MODES = ("fast", "seamless")
#: 68-point landmark sources for the crop and the 3DMM alignment: the face mesh (``auto``: mediapipe when
#: it runs, else LiteRT; or either by name; no download) or upstream's RetinaFace ResNet-50 + AWing FAN
#: (``talkinghead weights download awing retinaface``).
LANDMARK_SOURCES = ("auto", "mediapipe", "litert", "awing")
NUM_POSE_STYLES = 46


@dataclass
class SadTalkerPrepared:
    """Per-portrait state cached by the Avatar (opaque to callers)."""

    source: Any              # (1, 3, S, S) torch tensor in [0, 1]
    source_coeff: np.ndarray  # (73,) exp64 | angles3 | trans3 | crop (s, tx, ty)
    kp_canonical: Any        # (1, 15, 3) torch tensor (or None when kp_once is off)
    features: Any            # generator SourceFeatures (or None when source_cache is off)
    out_size: tuple[int, int]  # (w, h) of the output frames
    paster: Any              # face.paste.BoxPaster in full modes, else None
    landmarks: np.ndarray | None = None  # (68, 2) landmarks of ``source`` (S x S pixels)
    crop: Any = None         # preprocess.PortraitCrop (paste box, chosen face, crop info)


class SadTalkerAnimator(SadTalkerBankSupport, BackendBase):
    """SadTalker (CVPR 2023) talking-head animator using the official checkpoints.

    Args:
        size: renderer resolution, 256 or 512 (chooses ``SadTalker_V0.0.2_{size}.safetensors``).
        preprocess: ``crop`` | ``extcrop`` | ``resize`` | ``full`` | ``extfull``; full modes paste
            the face back into the portrait and use the 73-d mapping net.
        pose_style: 0..45, the PoseVAE style class.
        expression_scale: multiplies the expression coefficients.
        still: keep the source head pose (only expressions move).
        blink: add random eye blinks (seeded by ``seed``).
        seed: seed for the pose latents and blinks (None: nondeterministic).
        batch_size: frames per generator call.
        ref_pose: (N, 70+) or (N, 6) reference coefficients whose pose changes are added.
        ref_eyeblink: (N, 64+) reference coefficients whose expression drives the eyes.
        yaw, pitch, roll: free-view degree key values, linearly interpolated over the clip.
        weights_dir: folder with the checkpoint files (default: the weights cache, see
            ``checkpoint.default_weights_dir``).
        checkpoint, mapping_checkpoint: explicit file paths overriding ``weights_dir``.
        cache_dir: weights cache directory used when no folder or path is given (default: the
            user cache).
        device: torch device string.
        bf16: run the networks under bfloat16 autocast (faster on some CPUs; not bit-equal).
        fp16: run the networks under float16 autocast (CUDA only: the GPU path; convolutions in half
            precision, grid sampling, softmax and normalisation stay float32 under autocast's rules).
        paste_mode: ``fast`` (feathered blend) or ``seamless`` (upstream cv2.seamlessClone).
        batched, channels_last, inference_mode, kp_once, source_cache, weight_cache: optimisation
            switches (see the module docstring).
        chunk_frames: frames per yielded chunk (default: ``batch_size`` rounded up to 8).
        runtime: ``"torch"`` (default), or ``"onnx"`` / ``"onnx-int8"`` / ``"onnx-fp16"``: run the networks
            with onnxruntime (graphs exported once into ``onnx_dir``; see ``docs/onnx.md``).
        onnx_dir: folder of the exported graphs (default: ``onnx/`` in the talkinghead cache).
        param_runtime: runtime of the parameter networks alone (ExpNet, PoseVAE, MappingNet) when the
            ``bank`` animator plays without loading the renderer: ``"auto"`` (default: ``"onnx"`` when
            onnxruntime is installed — about 5x faster than torch on these small convolutions on a
            CPU — else ``"torch"``) or any ``runtime`` value.
        landmarks: ``"auto"`` (default: the face mesh on mediapipe, or LiteRT where mediapipe cannot
            run), ``"mediapipe"``, ``"litert"`` (both offline), or ``"awing"`` (RetinaFace ResNet-50 + AWing
            FAN as upstream; needs ``talkinghead weights download awing retinaface``, or the two facexlib
            files in ``weights_dir``).
    """

    stage: ClassVar[str] = "animator"
    name: ClassVar[str] = "sadtalker"
    capabilities: ClassVar[frozenset[str]] = frozenset(
        {"lipsync", "head_motion", "blink", "expression", "free_view", "full_frame", "stream", "bankable"})
    #: Every file a configuration may load: the 256/512 bundles, both mapping nets, and the
    #: RetinaFace ResNet-50 + AWing files of ``landmarks="awing"`` (the legacy .pth set is an
    #: alternative to the bundle, found when present).
    weights: ClassVar[tuple[WeightFile, ...]] = catalog.select(
        "sadtalker-256", "sadtalker-512", "mapping-00229", "mapping-00109", "retinaface-resnet50", "awing-wflw")

    def __init__(self, *, size: int = 256, preprocess: str = "crop", pose_style: int = 0,
                 expression_scale: float = 1.0, still: bool = False, blink: bool = True,
                 seed: int | None = 0, batch_size: int = 2, ref_pose: np.ndarray | None = None,
                 ref_eyeblink: np.ndarray | None = None, yaw: Sequence[float] | None = None,
                 pitch: Sequence[float] | None = None, roll: Sequence[float] | None = None,
                 weights_dir: str | Path | None = None, checkpoint: str | Path | None = None,
                 mapping_checkpoint: str | Path | None = None, device: str = "cpu", bf16: bool = False,
                 paste_mode: str = "fast", batched: bool = True, channels_last: bool = False,
                 inference_mode: bool = True, kp_once: bool = True, source_cache: bool = True,
                 weight_cache: bool = True, chunk_frames: int | None = None,
                 landmarks: str = "auto", cache_dir: str | Path | None = None, runtime: str = "torch",
                 onnx_dir: str | Path | None = None, fp16: bool = False, param_runtime: str = "auto") -> None:
        from .onnxrt import RUNTIMES

        if runtime not in RUNTIMES:
            raise ConfigError(f"sadtalker runtime must be one of {RUNTIMES}, got {runtime!r}")
        if param_runtime not in RUNTIMES + ("auto",):
            raise ConfigError(f"sadtalker param_runtime must be 'auto' or one of {RUNTIMES}, got {param_runtime!r}")
        if fp16 and not str(device).startswith("cuda"):
            raise ConfigError("sadtalker fp16 runs on a CUDA device (device='cuda'); on a CPU use bf16=True")
        if fp16 and bf16:
            raise ConfigError("sadtalker: choose fp16 or bf16, not both")
        if landmarks not in LANDMARK_SOURCES:
            raise ConfigError(f"sadtalker landmarks must be one of {LANDMARK_SOURCES}, got {landmarks!r}")
        if size not in (256, 512):
            raise ConfigError(f"sadtalker size must be 256 or 512, got {size!r}")
        if preprocess not in PREPROCESS_MODES:
            raise ConfigError(f"sadtalker preprocess must be one of {PREPROCESS_MODES}, got {preprocess!r}")
        if not (isinstance(pose_style, int) and 0 <= pose_style < NUM_POSE_STYLES):
            raise ConfigError(f"sadtalker pose_style must be an integer in 0..{NUM_POSE_STYLES - 1}, "
                              f"got {pose_style!r}")
        if paste_mode not in PASTE_MODES:
            raise ConfigError(f"sadtalker paste_mode must be one of {PASTE_MODES}, got {paste_mode!r}")
        if batch_size < 1:
            raise ConfigError(f"sadtalker batch_size must be >= 1, got {batch_size}")
        for nm, seq in (("yaw", yaw), ("pitch", pitch), ("roll", roll)):
            if seq is not None and len(seq) == 0:
                raise ConfigError(f"sadtalker {nm} must list at least one angle in degrees")
        self.size, self.preprocess, self.pose_style = size, preprocess, pose_style
        self.expression_scale, self.still, self.blink, self.seed = float(expression_scale), still, blink, seed
        self.batch_size = batch_size
        self.ref_pose, self.ref_eyeblink = ref_pose, ref_eyeblink
        self.yaw, self.pitch, self.roll = yaw, pitch, roll
        self.weights_dir, self.checkpoint, self.mapping_checkpoint = weights_dir, checkpoint, mapping_checkpoint
        self.cache_dir = cache_dir
        self.device, self.bf16, self.fp16, self.paste_mode = device, bf16, fp16, paste_mode
        self.batched, self.channels_last, self.inference_mode = batched, channels_last, inference_mode
        self.kp_once, self.source_cache, self.weight_cache = kp_once, source_cache, weight_cache
        self.chunk_frames = chunk_frames or max(8, batch_size)
        self._nets: dict[str, Any] | None = None
        self._light_nets: dict[str, Any] | None = None  # ExpNet, PoseVAE, MappingNet only (bank play)
        self._light_lock = threading.Lock()
        self.runtime, self.onnx_dir, self.param_runtime = runtime, onnx_dir, param_runtime
        self.landmarks = landmarks
        self._landmarks: Any = None  # face.landmarks.LandmarkSource, created in load()

    # ------------------------------------------------------------------ weights
    @property
    def full_mode(self) -> bool:
        return "full" in self.preprocess

    @classmethod
    def weights_available(cls, weights_dir: str | Path | None = None, size: int = 256,
                          cache_dir: str | Path | None = None) -> bool:
        """Whether the official weight files for the default configuration are present."""
        from .checkpoint import weights_present

        return weights_present(weights_dir, size=size, coeff_nc=70, cache_dir=cache_dir)

    def load(self) -> None:
        """Load all networks (idempotent)."""
        if self._nets is not None:
            return
        try:
            import torch  # noqa: F401
        except ImportError as exc:
            raise MissingDependencyError("torch", "sadtalker", "the SadTalker animator") from exc
        if self._landmarks is None:
            self._landmarks = self._make_landmarks()  # fails early if the landmark models cannot load

        from . import checkpoint as ck

        coeff_nc = 73 if self.full_mode else 70
        r = ck.load_renderer(size=self.size, coeff_nc=coeff_nc, weights_dir=self.weights_dir,
                             checkpoint=self.checkpoint, mapping_checkpoint=self.mapping_checkpoint,
                             cache_dir=self.cache_dir)
        coeff = ck.load_coefficient_nets(size=self.size, weights_dir=self.weights_dir,
                                         checkpoint=self.checkpoint, cache_dir=self.cache_dir)
        self._install({"kp": r.kp_detector, "gen": r.generator, "mapping": r.mapping, **coeff})

    @classmethod
    def from_networks(cls, nets: dict[str, Any], **config: Any) -> SadTalkerAnimator:
        """An animator around already-built networks (tests with the tiny networks of
        :func:`talkinghead.testing.nets.tiny_sadtalker`, converted or shared weights).

        Args:
            nets: ``kp`` (KPDetector), ``gen`` (generator), ``mapping`` (MappingNet with 70 inputs,
                or 73 for the ``full``/``extfull`` modes), ``exp`` (ExpNet), ``pose`` (PoseVAE),
                ``recon`` (ReconNet), in eval mode.
            **config: The usual keyword configuration.

        Raises:
            ConfigError: a network is missing, or the mapping net does not fit ``preprocess``.
        """
        anim = cls(**config)
        missing = sorted({"kp", "gen", "mapping", "exp", "pose", "recon"} - set(nets))
        if missing:
            raise ConfigError(f"sadtalker: from_networks needs the networks {missing}")
        want = 73 if anim.full_mode else 70
        got = getattr(nets["mapping"], "coeff_nc", want)
        if got != want:
            raise ConfigError(f"sadtalker: preprocess={anim.preprocess!r} needs a MappingNet with {want} inputs, "
                              f"got {got}")
        anim._landmarks = anim._make_landmarks()  # as load() does: missing landmark models fail here
        anim._install(dict(nets))
        return anim

    def _install(self, nets: dict[str, Any]) -> None:
        """Put the networks on the device and apply the weight-cache / channels-last switches."""
        import torch

        dev = torch.device(self.device)
        nets = {k: m.to(dev) for k, m in nets.items()}
        gen = nets["gen"]
        gen.decoder.set_weight_cache(self.weight_cache)
        if self.channels_last:  # only the 2-D convolutions (the generator also has 3-D ones)
            for m in gen.modules():
                if isinstance(m, torch.nn.Conv2d):
                    m.to(memory_format=torch.channels_last)
        self._use_runtime(nets)
        self._nets = nets

    def _use_runtime(self, nets: dict[str, Any], runtime: str | None = None) -> None:
        """With ``runtime="onnx…"``: swap the loaded torch networks for onnxruntime graphs (exported once)."""
        runtime = runtime or self.runtime
        if runtime == "torch":
            return
        from .onnxrt import default_onnx_dir, runtime_variant, use_onnx

        fp = self.bank_fingerprint()
        folder = Path(self.onnx_dir) if self.onnx_dir is not None else default_onnx_dir(
            self.size, 73 if self.full_mode else 70, fp["weights"])
        used = use_onnx(nets, folder, size=self.size, variant=runtime_variant(runtime), device=self.device)
        log.info("sadtalker: onnxruntime runs %s", ", ".join(used))

    def networks(self) -> dict[str, Any]:
        """The loaded networks by role (``exp``, ``pose``, ``mapping``, ``kp``, ``gen``, ``recon``)."""
        self.load()
        assert self._nets is not None
        return dict(self._nets)

    def _make_landmarks(self) -> Any:
        """The configured :class:`~talkinghead.face.landmarks.LandmarkSource`, loaded (missing models fail early)."""
        if self.landmarks != "awing":
            from ...face.landmarks import Mesh68Landmarks

            src = Mesh68Landmarks(self.landmarks)
            src.load()
            return src
        from ...face.awing import AWING_FILE, AWingAligner, AWingLandmarks
        from ...face.detector import FaceDetector

        # weights_dir may hold the facexlib files next to the SadTalker ones (upstream's gfpgan/weights)
        here = Path(self.weights_dir) if self.weights_dir is not None else None
        det_file = here / "detection_Resnet50_Final.pth" if here is not None else None
        aw_file = here / AWING_FILE if here is not None else None
        src = AWingLandmarks(
            detector=FaceDetector(model="resnet50", conf=0.97, device=self.device, cache_dir=self.cache_dir,
                                  weights_path=det_file if det_file is not None and det_file.is_file() else None),
            aligner=AWingAligner(device=self.device, cache_dir=self.cache_dir,
                                 weights_path=aw_file if aw_file is not None and aw_file.is_file() else None))
        src.load()
        return src

    def close(self) -> None:
        self._nets = None
        self._light_nets = None
        if self._landmarks is not None and hasattr(self._landmarks, "close"):
            self._landmarks.close()
        self._landmarks = None

    def _grad_ctx(self):  # type: ignore[no-untyped-def]
        import torch

        return torch.inference_mode() if self.inference_mode else torch.no_grad()

    def _autocast(self):  # type: ignore[no-untyped-def]
        import contextlib

        import torch

        if not (self.bf16 or self.fp16):
            return contextlib.nullcontext()
        return torch.autocast(device_type=torch.device(self.device).type,
                              dtype=torch.float16 if self.fp16 else torch.bfloat16)

    # ------------------------------------------------------------------ prepare
    def prepare(self, portrait: Portrait, *, multiple_faces: str = "largest") -> SadTalkerPrepared:
        """Crop, align and encode the portrait (landmarks, ReconNet, keypoints, source features)."""
        import torch

        from . import preprocess as pp
        from .recon import source_coefficients

        self.load()
        assert self._nets is not None and self._landmarks is not None
        image = portrait.image
        # NoFaceError / MultipleFacesError / FaceTooSmallError come from face.selection.select_face
        crop = pp.crop_portrait(image, mode=self.preprocess, size=self.size, multiple_faces=multiple_faces,
                                landmarks=self._landmarks)
        src_img = crop.image
        coeff, _ = source_coefficients(self._nets["recon"], src_img, crop.lm68)  # (73,)
        src = torch.from_numpy(src_img.astype(np.float32) / np.float32(255)).permute(2, 0, 1)[None]
        src = src.contiguous().to(self.device)
        kp_can = feats = None
        with self._grad_ctx(), self._autocast():
            if self.kp_once:
                kp_can = self._nets["kp"](src).float()
            if self.source_cache:
                feats = self._nets["gen"].encode_source(self._mem(src))
        paster = None
        ow, oh = crop.box_size
        out_size = (self.size, int(self.size * oh / ow)) if ow else (self.size, self.size)
        if self.full_mode:
            from ...face.paste import BoxPaster

            paster = BoxPaster(image, crop.paste_box, self.paste_mode)
        return SadTalkerPrepared(src, np.asarray(coeff, np.float32), kp_can, feats, out_size, paster,
                                 crop.lm68, crop)

    def _mem(self, x: Any) -> Any:
        import torch

        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    # ------------------------------------------------------------------ animate
    def coefficients(self, prepared: SadTalkerPrepared, audio: Audio, *, fps: float) -> np.ndarray:
        """(T, 70) exp || pose coefficients for the clip, T = ``frame_count(audio.duration, fps)``."""
        assert self._nets is not None
        return self._coefficients(self._nets, prepared.source_coeff, audio, fps=fps)

    def _coefficients(self, nets: dict[str, Any], source_coeff: np.ndarray, audio: Audio, *, fps: float) -> np.ndarray:
        """ExpNet + PoseVAE (+ blinks, Savitzky-Golay) for the source coefficients: (T, 70)."""
        import torch

        from .audio import blink_sequence

        mels = self._mels(audio, fps)
        t = len(mels)
        blink = blink_sequence(t, fps, seed=self.seed) if self.blink else None
        gen = torch.Generator().manual_seed(self.seed) if self.seed is not None else None
        return self._coefficients_from(nets, source_coeff, mels, blink, generator=gen)

    def _mels(self, audio: Audio, fps: float) -> np.ndarray:
        """(T, 80, 16) mel windows of the clip, T = ``frame_count(audio.duration, fps)``."""
        from .audio import mel_windows

        samples = audio.resample(16000).samples
        if len(samples) < 16000 / fps:
            raise AudioError(f"The audio is {audio.duration:.3f} s long, shorter than one video frame at "
                             f"{fps} fps; give at least {1 / fps:.3f} s of speech.")
        t = frame_count(audio.duration, fps)
        need = int(np.ceil(t * 16000 / fps)) + 1
        if len(samples) < need:
            samples = np.pad(samples, (0, need - len(samples)))
        mels, _ = mel_windows(samples, fps)
        return mels[:t]

    def _coefficients_from(self, nets: dict[str, Any], source_coeff: np.ndarray, mels: np.ndarray,
                           blink: np.ndarray | None, *, generator: Any = None, z: Any = None) -> np.ndarray:
        from .coeffnets import generate_coefficients

        with self._grad_ctx():
            res = generate_coefficients(nets["exp"], nets["pose"], mels, source_coeff[:70],
                                        pose_style=self.pose_style, blink=blink, use_blink=self.blink,
                                        generator=generator, z=z, ref_eyeblink=self.ref_eyeblink,
                                        ref_pose=self.ref_pose)
        return res.coeffs

    def _render_inputs(self, source_coeff: np.ndarray, coeffs: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict]:
        """MappingNet windows of the source (nc, 27) and of every frame (T, nc, 27), and free-view degrees."""
        from .mapping import render_inputs

        ri = render_inputs(source_coeff, coeffs, full=self.full_mode, expression_scale=self.expression_scale,
                           still=self.still, yaw=self.yaw, pitch=self.pitch, roll=self.roll)
        free = {f"{k}_deg": np.asarray(v, np.float32) for k, v in
                (("yaw", ri.yaw), ("pitch", ri.pitch), ("roll", ri.roll)) if v is not None}
        return ri.source, ri.target, free

    def _posed_keypoints(self, mapping: Any, kc: Any, src_sem: np.ndarray, sem: np.ndarray,
                         free: dict[str, np.ndarray]) -> tuple[Any, Any]:
        """Source (n, 15, 3) and driving (n, 15, 3) keypoints for n MappingNet windows ``sem``."""
        import torch

        from .keypoints import transform_keypoints

        dev = torch.device(self.device)
        n = len(sem)
        he_src = _mapping_out(mapping(torch.from_numpy(src_sem[None]).to(dev)))
        ks = transform_keypoints(kc, *(v.float().expand(n, *v.shape[1:]) for v in he_src))
        he = _mapping_out(mapping(torch.from_numpy(np.ascontiguousarray(sem)).to(dev)))
        kw = {k: torch.from_numpy(np.ascontiguousarray(v)).to(dev) for k, v in free.items()}
        return ks, transform_keypoints(kc, *(v.float() for v in he), **kw)

    def animate(self, prepared: SadTalkerPrepared, audio: Audio, *, fps: float,
                progress: ProgressCallback | None = None) -> Iterator[FrameChunk]:
        """Yield exactly ``frame_count(audio.duration, fps)`` frames in chunks."""
        if fps <= 0:
            raise ConfigError(f"fps must be positive, got {fps}")
        self.load()
        coeffs = self.coefficients(prepared, audio, fps=fps)
        yield from self.render(prepared, coeffs, progress=progress)

    def open_stream(self, prepared: SadTalkerPrepared, *, fps: Any, sample_rate: int, first_frame: int = 0,
                    **options: Any) -> Any:
        """A live stream of the portrait (see :class:`.stream.SadTalkerStream`; ``options`` go to it).

        Coefficients are computed block by block as audio arrives, exactly as for whole clips; idle
        frames between sentences keep the source expression with blinks and a small head sway.
        """
        from .stream import SadTalkerStream

        if any(v is not None and len(v) > 1 for v in (self.yaw, self.pitch, self.roll)):
            raise ConfigError("free-view key values (yaw/pitch/roll lists) are interpolated over a clip and cannot "
                              "be used in a live stream; give at most one value each")
        return SadTalkerStream(self, prepared, fps=fps, sample_rate=sample_rate, first_frame=first_frame, **options)

    def render(self, prepared: SadTalkerPrepared, coeffs: np.ndarray, *,
               progress: ProgressCallback | None = None) -> Iterator[FrameChunk]:
        """Render (T, 70) coefficients to frames (chunks of ``chunk_frames``)."""
        assert self._nets is not None
        src_sem, sem, free = self._render_inputs(prepared.source_coeff, coeffs)
        yield from self.render_windows(prepared, src_sem, sem, free, progress=progress)

    def render_windows(self, prepared: SadTalkerPrepared, src_sem: np.ndarray, sem: np.ndarray,
                       free: dict[str, np.ndarray] | None = None, *,
                       progress: ProgressCallback | None = None) -> Iterator[FrameChunk]:
        """Render frames from MappingNet windows (``sem``: (T, nc, 27), see :func:`.mapping.render_inputs`)."""
        assert self._nets is not None
        free = free or {}
        t = sem.shape[0]
        kp_net, gen, mapping = self._nets["kp"], self._nets["gen"], self._nets["mapping"]
        with self._grad_ctx(), self._autocast():
            kp_can = prepared.kp_canonical if prepared.kp_canonical is not None else None
            bs = self.batch_size if self.batched else 1
            done, buf = 0, []
            for b0 in range(0, t, bs):
                idx = list(range(b0, min(t, b0 + bs)))
                n = len(idx)
                if kp_can is None:  # upstream: detector on every batch row's copy of the source
                    kc = kp_net(prepared.source.expand(n, -1, -1, -1)).float()
                else:
                    kc = kp_can
                ks, kd = self._posed_keypoints(mapping, kc, src_sem, sem[idx], {k: v[idx] for k, v in free.items()})
                buf.append(self._finish(prepared, self._generate(gen, prepared, ks, kd)))
                got = sum(len(x) for x in buf)
                if got >= self.chunk_frames or idx[-1] == t - 1:
                    chunk = np.concatenate(buf)
                    yield FrameChunk(frames=chunk, start=done)
                    done += len(chunk)
                    buf = []
                    if progress is not None:
                        progress(done, t)

    def _generate(self, gen: Any, prepared: SadTalkerPrepared, ks: Any, kd: Any) -> np.ndarray:
        """The generator on one batch of (n, 15, 3) source/driving keypoints: (n, S, S, 3) uint8 crops."""
        n = kd.shape[0]
        if prepared.features is not None:
            out = gen.render(prepared.features, ks, kd)
        else:
            out = gen(self._mem(prepared.source.expand(n, -1, -1, -1)), ks, kd)
        return _to_uint8(out.float().permute(0, 2, 3, 1).cpu().numpy())

    def _finish(self, prepared: Any, frames: np.ndarray) -> np.ndarray:
        """Crops -> output frames: pasted into the portrait (full modes) or resized to ``out_size``."""
        if prepared.paster is not None:
            return prepared.paster.paste(frames)
        w, h = prepared.out_size
        if (w, h) == frames.shape[2:0:-1]:
            return frames
        import cv2

        return np.stack([cv2.resize(f, (w, h)) for f in frames])


def _mapping_out(out: Any) -> tuple[Any, Any, Any, Any, Any]:
    """MappingNet output as (yaw, pitch, roll, t, exp) whether it returns a dict or a tuple."""
    if isinstance(out, dict):
        return out["yaw"], out["pitch"], out["roll"], out["t"], out["exp"]
    return tuple(out)  # type: ignore[return-value]


def _to_uint8(x: np.ndarray) -> np.ndarray:
    """skimage ``img_as_ubyte`` for [0, 1] floats: x * 255, rounded."""
    return np.clip(np.rint(x * 255), 0, 255).astype(np.uint8)


__all__ = ["SadTalkerAnimator", "SadTalkerPrepared", "ModelLoadError"]
