"""The ``gfpgan`` enhancer: detect faces, align, restore with GFPGAN v1.4, paste back.

Per chunk of frames: RetinaFace finds faces (every ``detect_every``-th frame; in between the last
landmarks are reused, since a talking head barely moves), each face is aligned to the FFHQ
template, the crops are restored in batches, and the restored faces are blended back. The chunk
keeps its frame count; frames without a face pass through unchanged (only upscaled when
``upscale > 1``).

``restore_size`` picks what "restoring at 256 / 512" means with the official 512-only weights:

* ``"full512"`` (upstream): 512 crops end to end.
* ``"align256"``: align to a 256 crop, resize it to 512 for the network, resize the output back to
  256 before pasting. Same network cost as ``full512``; cheaper warps and masks, softer result.
* ``"decoder256"`` (experimental): 512 crop into the encoder, stop the StyleGAN decoder at its 256
  level and paste that RGB skip. About a quarter less compute; the 256 level was not trained as an
  output.

Feeding a 256 crop to the 512 network is refused: upstream's GFPGANer catches the resulting error and
silently pastes the unrestored crop (so "256" looked faster because nothing was restored). Here any
failure of the network raises :class:`~talkinghead.errors.StageError`.

Torch, OpenCV and the face modules are imported in :meth:`GFPGANEnhancer.load` only.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np

from ..errors import ConfigError, StageError
from ..hookspecs import hookimpl
from ..stages.base import BackendBase
from ..values import Face, FrameChunk
from ..weights import WeightFile, catalog

log = logging.getLogger(__name__)

RESTORE_SIZES: tuple[str, ...] = ("full512", "align256", "decoder256")
PASTE_MODES: tuple[str, ...] = ("fast", "square", "parse", "parse_noblur")
NOISE_MODES: tuple[str, ...] = ("stored", "seeded", "random")
MULTIPLE_FACES: tuple[str, ...] = ("all", "largest")

GFPGAN_WEIGHTS_NAME = "gfpgan-v1.4"
PARSENET_WEIGHTS_NAME = "parsenet"
PARSENET_URL = catalog.entry(PARSENET_WEIGHTS_NAME).urls[0]


class _Detector(Protocol):
    def load(self) -> None: ...

    def detect_batch(self, frames: np.ndarray) -> list[list[Face]]: ...


@dataclass
class GFPGANStream:
    """Per-video state of the enhancer: the tracked faces and the paste-back caches of one video.

    Get one from :meth:`GFPGANEnhancer.new_state` per video and pass it to every
    :meth:`~GFPGANEnhancer.enhance` call of that video; the enhancer itself holds only the networks, so
    one enhancer serves any number of concurrent videos.
    """

    track: list[Face] | None = None  # faces of the last detection
    since_detect: int = 0
    next_start: int | None = None
    paster: Any = field(default=None, repr=False)  # face.paste.FastPaster, made on first use

    def reset(self) -> None:
        """Forget the tracked faces (a new video)."""
        self.track, self.since_detect, self.next_start = None, 0, None


class GFPGANEnhancer(BackendBase):
    """Face restoration with GFPGAN v1.4 on every frame of a chunk.

    Args:
        restore_size: ``"full512"`` (upstream), ``"align256"`` or ``"decoder256"`` (experimental);
            see the module docstring and ``docs/enhancer.md``.
        upscale: Output scale. 1 (default) keeps the video size; upstream GFPGANer uses 2.
        paste: ``"fast"`` (feathered mask warped only over the face box, cached; default),
            ``"square"`` (upstream without parsing), ``"parse"`` (upstream default: ParseNet mask,
            two 101x101 blurs) or ``"parse_noblur"``.
        parse_mask: With ``paste="fast"``, also narrow the mask with ParseNet's face classes
            (runs ParseNet, about as costly as GFPGAN itself, per face).
        multiple_faces: ``"all"`` restores every face found; ``"largest"`` only the biggest.
        detect_every: Detect on every k-th frame and reuse the last landmarks in between (1 =
            detect every frame). A frame where the last detection found nothing is always re-detected.
        detector_model: RetinaFace backbone, ``"mobilenet0.25"`` (default, ~17 ms) or ``"resnet50"``
            (upstream, ~190 ms per 512x512 frame on 2 CPU threads).
        det_conf: Detector score threshold (FaceRestoreHelper uses 0.97).
        eye_dist_threshold: Ignore faces whose eyes are closer than this many pixels.
        noise: ``"stored"`` (checkpoint noise maps: deterministic, no flicker; default),
            ``"seeded"`` (fixed-seed noise) or ``"random"`` (fresh noise per frame, upstream).
        seed: Seed for ``noise="seeded"``.
        batch_size: Faces per network call; default 1 on CPU (batching gains nothing there and
            costs memory) and 8 on other devices.
        device: Torch device (``"cpu"``, ``"cuda"``...).
        weights: ``GFPGANv1.4.pth`` path (default: the weights cache, ``gfpgan-v1.4``); kept as
            ``weights_path`` (the class attribute ``weights`` lists the files the backend needs).
        detector_weights: RetinaFace checkpoint path (default: the weights cache).
        parsenet_weights: ``parsing_parsenet.pth`` path (default: the weights cache), used only
            by the parse paste modes or ``parse_mask``.
        cache_dir: Weights cache directory (default: talkinghead's cache).
        half: Run GFPGAN under float16 autocast (CUDA only; the GPU path).
        runtime: ``"torch"`` (default) or ``"onnx"``: run GFPGAN with onnxruntime (stored noise, full
            512 output); the graph is exported once to ``onnx_path`` (default: the cache).
        onnx_path: The exported GFPGAN graph (``talkinghead export onnx --face --graphs gfpgan``).
    """

    stage: ClassVar[str] = "enhancer"
    name: ClassVar[str] = "gfpgan"
    capabilities: ClassVar[frozenset[str]] = frozenset({"face-restoration", "gpu", "batch"})
    #: GFPGAN v1.4, both RetinaFace detectors (``detector_model``) and ParseNet (parse paste modes).
    weights: ClassVar[tuple[WeightFile, ...]] = catalog.select(
        GFPGAN_WEIGHTS_NAME, "retinaface-mobilenet0.25", "retinaface-resnet50", PARSENET_WEIGHTS_NAME
    )

    def __init__(
        self,
        *,
        restore_size: str = "full512",
        upscale: float = 1,
        paste: str = "fast",
        parse_mask: bool = False,
        multiple_faces: str = "all",
        detect_every: int = 1,
        detector_model: str = "mobilenet0.25",
        det_conf: float = 0.97,
        eye_dist_threshold: float = 5.0,
        noise: str = "stored",
        seed: int = 0,
        batch_size: int | None = None,
        device: str = "cpu",
        weights: str | os.PathLike[str] | None = None,
        detector_weights: str | os.PathLike[str] | None = None,
        parsenet_weights: str | os.PathLike[str] | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        half: bool = False,
        runtime: str = "torch",
        onnx_path: str | os.PathLike[str] | None = None,
    ) -> None:
        def choice(name: str, value: str, allowed: Sequence[str]) -> str:
            if value not in allowed:
                raise ConfigError(f"gfpgan: {name} must be one of {', '.join(allowed)}; got {value!r}")
            return value

        self.restore_size = choice("restore_size", restore_size, RESTORE_SIZES)
        self.paste = choice("paste", paste, PASTE_MODES)
        self.multiple_faces = choice("multiple_faces", multiple_faces, MULTIPLE_FACES)
        self.noise = choice("noise", noise, NOISE_MODES)
        self.runtime = choice("runtime", runtime, ("torch", "onnx"))
        if half and not str(device).startswith("cuda"):
            raise ConfigError("gfpgan: half precision runs on a CUDA device (device='cuda')")
        if runtime == "onnx" and (noise != "stored" or restore_size == "decoder256"):
            raise ConfigError("gfpgan: runtime='onnx' runs the exported graph (stored noise, 512 output); "
                              "use noise='stored' and restore_size 'full512' or 'align256'")
        self.half = bool(half)
        self.onnx_path = onnx_path
        if not (isinstance(upscale, (int, float)) and 1 <= float(upscale) <= 8):
            raise ConfigError(f"gfpgan: upscale must be a number between 1 and 8; got {upscale!r}")
        if not (isinstance(detect_every, int) and detect_every >= 1):
            raise ConfigError(f"gfpgan: detect_every must be an integer >= 1; got {detect_every!r}")
        if batch_size is None:
            batch_size = 1 if str(device).startswith("cpu") else 8
        if not (isinstance(batch_size, int) and batch_size >= 1):
            raise ConfigError(f"gfpgan: batch_size must be an integer >= 1; got {batch_size!r}")
        if not 0 < float(det_conf) < 1:
            raise ConfigError(f"gfpgan: det_conf must be in (0, 1); got {det_conf!r}")
        self.upscale = float(upscale)
        self.parse_mask = bool(parse_mask)
        self.detect_every = detect_every
        self.detector_model = detector_model
        self.det_conf = float(det_conf)
        self.eye_dist_threshold = float(eye_dist_threshold)
        self.seed = int(seed)
        self.batch_size = batch_size
        self.device = device
        self.weights_path = weights
        self.detector_weights = detector_weights
        self.parsenet_weights = parsenet_weights
        self.cache_dir = cache_dir

        self._detector: Any = None
        self._net: Any = None
        self._parsenet: Any = None
        self._default = GFPGANStream()  # for callers that pass no state (one video at a time)
        self._default_lock = threading.Lock()
        self._counts = {"frames_seen": 0, "frames_without_face": 0, "faces_restored": 0, "detections_run": 0}
        self._counts_lock = threading.Lock()

    # ------------------------------------------------------------------ construction / loading

    @property
    def needs_parsenet(self) -> bool:
        """Whether the configuration runs ParseNet."""
        return self.paste in ("parse", "parse_noblur") or self.parse_mask

    @property
    def crop_size(self) -> int:
        """Side of the aligned crop taken from the frame (256 only for ``align256``)."""
        return 256 if self.restore_size == "align256" else 512

    @classmethod
    def from_components(
        cls, *, detector: _Detector, net: Any, parsenet: Any = None, **config: Any
    ) -> GFPGANEnhancer:
        """An enhancer around already-built parts (tests, custom detectors, shared networks).

        Args:
            detector: Anything with ``detect_batch(frames) -> list[list[Face]]`` (e.g.
                :class:`talkinghead.face.detector.FaceDetector`).
            net: A loaded :class:`talkinghead.face.gfpgan.GFPGANv1Clean`.
            parsenet: A loaded ParseNet when the configuration needs one.
            **config: The usual keyword configuration.
        """
        enh = cls(**config)
        enh._detector, enh._net, enh._parsenet = detector, net, parsenet
        return enh

    def _resolve(self, name: str, explicit: str | os.PathLike[str] | None) -> Path:
        from ..weights import resolve

        return resolve(catalog.entry(name), explicit, cache_dir=self.cache_dir)

    def load(self) -> None:
        """Load the detector, GFPGAN and (if needed) ParseNet. Idempotent.

        Raises:
            WeightsMissingError: a checkpoint is missing (the message says where to get it).
            ModelLoadError: a checkpoint is corrupt or of the wrong architecture.
            MissingDependencyError: torch or OpenCV is not installed.
        """
        try:
            import cv2  # noqa: F401
            import torch  # noqa: F401
        except ImportError as exc:  # pragma: no cover - depends on the environment
            from ..errors import MissingDependencyError

            raise MissingDependencyError(exc.name or "torch", "face", "the gfpgan enhancer") from exc
        from ..face.gfpgan import load_gfpgan

        if self._net is None:
            path = self._resolve(GFPGAN_WEIGHTS_NAME, self.weights_path)
            self._net = load_gfpgan(path, device=self.device)
            if self.runtime == "onnx":
                from ..onnx.runtime import onnx_gfpgan

                self._net = onnx_gfpgan(self._net, path, self.onnx_path, device=self.device)
        if self._detector is None:
            from ..face.detector import FaceDetector

            det = FaceDetector(
                weights_path=self.detector_weights,
                model=self.detector_model,
                conf=self.det_conf,
                eye_dist_threshold=self.eye_dist_threshold,
                device=self.device,
                cache_dir=self.cache_dir,
            )
            det.load()
            self._detector = det
        if self.needs_parsenet and self._parsenet is None:
            from ..face.parsenet import load_parsenet

            self._parsenet = load_parsenet(self._resolve(PARSENET_WEIGHTS_NAME, self.parsenet_weights), self.device)

    def close(self) -> None:
        """Drop the networks and the default tracking state."""
        self._detector = self._net = self._parsenet = None
        self.reset()

    def new_state(self) -> GFPGANStream:
        """Fresh per-video state (see :class:`GFPGANStream`); the Avatar makes one per video."""
        return GFPGANStream()

    def reset(self) -> None:
        """Forget the default state's tracked faces (a chunk starting at 0 does it too)."""
        with self._default_lock:
            self._default = GFPGANStream()

    def _count(self, **inc: int) -> None:
        with self._counts_lock:
            for k, v in inc.items():
                self._counts[k] += v

    @property
    def frames_seen(self) -> int:
        """Frames enhanced since construction (all videos)."""
        return self._counts["frames_seen"]

    @property
    def frames_without_face(self) -> int:
        """Frames in which no face was found (all videos)."""
        return self._counts["frames_without_face"]

    @property
    def faces_restored(self) -> int:
        """Faces restored (all videos)."""
        return self._counts["faces_restored"]

    @property
    def detections_run(self) -> int:
        """Frames the detector ran on (all videos)."""
        return self._counts["detections_run"]

    # ------------------------------------------------------------------ the stage

    def _faces_for(self, frames: np.ndarray, start: int, st: GFPGANStream) -> list[list[Face]]:
        """Faces per frame: detected on every ``detect_every``-th frame, tracked in between."""
        if start == 0 or st.next_start is None or start != st.next_start:
            st.reset()
        n = len(frames)
        result: list[list[Face] | None] = [None] * n
        i = 0
        while i < n:
            need = st.track is None or not st.track or st.since_detect >= self.detect_every
            if not need:
                result[i] = st.track
                st.since_detect += 1
                i += 1
                continue
            # detect this frame and the following frames that will certainly be detection frames
            # (every frame when detect_every == 1), batched through the detector
            j = i + 1 if self.detect_every > 1 else n
            found = self._detector.detect_batch(frames[i:j])
            self._count(detections_run=j - i)
            for k, faces in enumerate(found):
                result[i + k] = self._select(faces)
            st.track = result[j - 1]
            st.since_detect = 1
            i = j
        st.next_start = start + n
        return [r if r is not None else [] for r in result]

    def _select(self, faces: list[Face]) -> list[Face]:
        faces = [f for f in faces if f.landmarks is not None]
        if self.multiple_faces == "largest" and faces:
            return [max(faces, key=lambda f: f.area)]
        return faces

    def _restore(self, crops: list[np.ndarray]) -> list[np.ndarray]:
        """Aligned uint8 RGB crops (``crop_size``) -> restored uint8 RGB faces (paste size)."""
        import cv2
        import torch

        from ..face.gfpgan import to_input, to_uint8

        out: list[np.ndarray] = []
        stop_at = 256 if self.restore_size == "decoder256" else None
        for b0 in range(0, len(crops), self.batch_size):
            batch = crops[b0 : b0 + self.batch_size]
            if self.restore_size == "align256":
                batch = [cv2.resize(c, (512, 512), interpolation=cv2.INTER_LINEAR) for c in batch]
            try:
                with torch.inference_mode(), torch.autocast("cuda", torch.float16, enabled=self.half):
                    x = to_input(np.stack(batch), device=self.device)
                    y = self._net(x, noise=self.noise, seed=self.seed, stop_at=stop_at).float()
            except Exception as exc:  # never paste unrestored crops silently (upstream's behaviour)
                raise StageError(
                    "enhancer",
                    self.name,
                    f"GFPGAN failed on a batch of {len(batch)} face(s) of size {batch[0].shape[:2]}: "
                    f"{type(exc).__name__}: {exc}",
                ) from exc
            faces = to_uint8(y)
            if self.restore_size == "align256":
                faces = np.stack([cv2.resize(f, (256, 256), interpolation=cv2.INTER_AREA) for f in faces])
            out.extend(faces)
        return out

    def enhance(self, chunk: FrameChunk, *, state: GFPGANStream | None = None) -> FrameChunk:
        """Restore the faces in every frame of ``chunk``; returns as many frames, same ``start``.

        Args:
            chunk: Frames of one video, in order.
            state: The video's :class:`GFPGANStream` (from :meth:`new_state`). Without it the enhancer's
                default state is used, one call at a time: fine for one video, serialised for several.

        Raises:
            StageError: the restoration network failed.
        """
        if self._net is None or self._detector is None:
            self.load()
        if state is None:
            with self._default_lock:
                return self._enhance(chunk, self._default)
        return self._enhance(chunk, state)

    def _enhance(self, chunk: FrameChunk, st: GFPGANStream) -> FrameChunk:
        from ..face.align import BORDER_VALUE, estimate_affine, warp_face
        from ..face.paste import FastPaster, paste_faces, upscale_background

        if st.paster is None:
            st.paster = FastPaster()
        frames = chunk.frames
        n, h, w = frames.shape[:3]
        per_frame = self._faces_for(frames, chunk.start, st)
        border_rgb = tuple(reversed(BORDER_VALUE))
        paste_size = 256 if self.restore_size in ("align256", "decoder256") else 512

        # align every face of the chunk, restore them together
        jobs: list[tuple[int, np.ndarray]] = []  # (frame index, affine to the paste-size crop)
        crops: list[np.ndarray] = []
        for fi, faces in enumerate(per_frame):
            for face in faces:
                affine = estimate_affine(face.landmarks, self.crop_size)
                crops.append(warp_face(frames[fi], affine, self.crop_size, border_rgb))
                if paste_size != self.crop_size:  # decoder256: 512 crop in, 256 face out
                    affine = affine * (paste_size / self.crop_size)
                jobs.append((fi, affine))
        restored = self._restore(crops) if crops else []

        by_frame: dict[int, list[int]] = {}
        for k, (fi, _) in enumerate(jobs):
            by_frame.setdefault(fi, []).append(k)
        out_h, out_w = int(h * self.upscale), int(w * self.upscale)
        out = np.empty((n, out_h, out_w, 3), dtype=np.uint8)
        without = 0
        for fi in range(n):
            ks = by_frame.get(fi)
            if not ks:
                without += 1
                out[fi] = frames[fi] if self.upscale == 1 else upscale_background(frames[fi], self.upscale)
                continue
            faces = [restored[k] for k in ks]
            affines = [jobs[k][1] for k in ks]
            labels = None
            if self.needs_parsenet:
                labels = [self._parse(f) for f in faces]
            mode = self.paste
            if mode == "fast" and self.upscale == 1:
                # fast mode blends in place on a copy of the frame: no LANCZOS pass at scale 1
                out[fi] = st.paster.paste(frames[fi].copy(), faces, affines, parse_labels=labels)
            else:
                res = paste_faces(
                    frames[fi], faces, affines, upscale=self.upscale, mode=mode,
                    parse_labels=labels, fast=st.paster,
                )
                out[fi] = np.clip(res, 0, 255).astype(np.uint8) if res.dtype != np.uint8 else res
        self._count(frames_seen=n, frames_without_face=without, faces_restored=len(jobs))
        return FrameChunk(out, chunk.start)

    def _parse(self, face_rgb: np.ndarray) -> np.ndarray:
        from ..face.parsenet import parse_face_bgr

        return parse_face_bgr(self._parsenet, np.ascontiguousarray(face_rgb[:, :, ::-1]))

    def stats(self) -> dict[str, int]:
        """Counters since construction: frames seen, frames without a face, faces restored, detector runs."""
        with self._counts_lock:
            return dict(self._counts)


@hookimpl
def register_backends(register) -> None:
    """This module's backend registers itself, exactly as a third-party plug-in does."""
    register(GFPGANEnhancer)
