"""The ``bank`` animator: a source animator's frames rendered once per portrait, replayed in real time."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ...errors import ConfigError, StageError
from ...stages import BackendBase, ProgressCallback, frame_count, is_bankable
from ...values import Audio, FrameChunk, Portrait
from .build import BuildProgress, build_bank
from .pack import FORMAT_VERSION, PACK_SUFFIX, BankPack, BuildDir, read_pack, write_pack
from .player import INTERPOLATIONS, BankPlayer
from .speech import speech_set_id

log = logging.getLogger(__name__)

__all__ = ["BankAnimator", "BankPrepared", "default_bank_dir", "BUILD_MODES"]

BUILD_MODES = ("auto", "never")
FLOW_PRESETS = ("ultrafast", "fast", "medium")


def default_bank_dir() -> Path:
    """Where banks are cached: ``banks/`` next to the weights folder (``$TALKINGHEAD_CACHE/banks``
    when that variable is set, else ``platformdirs.user_cache_dir("talkinghead")/banks``)."""
    from ...weights import default_weights_dir

    return default_weights_dir().parent / "banks"


@dataclass(eq=False)
class BankPrepared:
    """Per-portrait state of the bank animator: the pack, the source's play context and the player."""

    pack: BankPack
    play: Any
    player: BankPlayer
    path: Path | None = None


class BankAnimator(BackendBase):
    """Real-time animation from a per-portrait bank of frames rendered by a slower source animator.

    *Build* (once per portrait, cached on disk, resumable): the source animator's driving parameters
    over a bundled, phonetically rich speech set (spoken by ``tts``) are clustered into ``k``
    states, and the source renders those ``k`` frames. *Play*: audio -> the source's cheap parameter
    networks -> the nearest bank states -> optical-flow interpolation between two of them ->
    paste-back. See ``docs/bank.md``.

    Args:
        source: the source animator: a registered name (``"sadtalker"``, ``"viseme"``) or an instance
            implementing :class:`~talkinghead.stages.BankableAnimator`.
        source_config: options of the source animator when ``source`` is a name.
        k: number of bank frames (more: closer to the source, longer build).
        pack: an avatar pack file (``.thbank``) to play instead of the cache (it must have been built
            for the same portrait and a compatible source configuration).
        build: ``"auto"`` builds a missing bank on first use (slow with SadTalker: about ``k`` × the
            source's time per frame); ``"never"`` raises instead and names the build command.
        tts, tts_config: the TTS that speaks the speech set while building (a name or an instance).
        sentences: use only the first N sentences of the speech set (quick builds; None: all).
        bank_dir: cache folder (default :func:`default_bank_dir`).
        seed: seeds the choice of states.
        interpolation: ``flow`` (default), ``blend`` or ``nearest``.
        neighbours: states tried as the second frame of a pair.
        flow_preset: DIS optical-flow preset: ``ultrafast``, ``fast`` or ``medium``.
        flow_size: flows are computed at most this many pixels on the long side.
        chunk_frames: frames per yielded chunk.
    """

    stage: ClassVar[str] = "animator"
    name: ClassVar[str] = "bank"
    capabilities: ClassVar[frozenset[str]] = frozenset({"cpu", "realtime", "bank"})

    def __init__(self, *, source: Any = "sadtalker", source_config: Mapping[str, Any] | None = None, k: int = 64,
                 pack: str | os.PathLike | None = None, build: str = "auto", tts: Any = "piper",
                 tts_config: Mapping[str, Any] | None = None, sentences: int | None = None,
                 bank_dir: str | os.PathLike | None = None, seed: int = 0, interpolation: str = "flow",
                 neighbours: int = 6, flow_preset: str = "fast", flow_size: int = 256, chunk_frames: int = 8) -> None:
        if not isinstance(k, int) or not 2 <= k <= 1024:
            raise ConfigError(f"bank k must be an integer between 2 and 1024, got {k!r}")
        if build not in BUILD_MODES:
            raise ConfigError(f"bank build must be one of {BUILD_MODES}, got {build!r}")
        if interpolation not in INTERPOLATIONS:
            raise ConfigError(f"bank interpolation must be one of {INTERPOLATIONS}, got {interpolation!r}")
        if flow_preset not in FLOW_PRESETS:
            raise ConfigError(f"bank flow_preset must be one of {FLOW_PRESETS}, got {flow_preset!r}")
        if sentences is not None and int(sentences) < 1:
            raise ConfigError(f"bank sentences must be at least 1 (or None for all), got {sentences!r}")
        for nm, v, lo in (("neighbours", neighbours, 1), ("flow_size", flow_size, 16),
                          ("chunk_frames", chunk_frames, 1)):
            if int(v) < lo:
                raise ConfigError(f"bank {nm} must be at least {lo}, got {v!r}")
        if source_config is not None and not isinstance(source_config, Mapping):
            raise ConfigError(f"bank source_config must be a mapping of options, got {type(source_config).__name__}")
        if isinstance(source, str):
            if source == self.name:
                raise ConfigError("the bank animator cannot use itself as its source; use e.g. source='sadtalker'")
            from ...plugins import get_registry

            self.source_name = source
            self.source = get_registry().create("animator", source, dict(source_config or {}))
            self.source_config = dict(source_config or {})
            self._owns_source = True
        else:
            self.source_name = str(getattr(source, "name", type(source).__name__))
            self.source = source
            self.source_config = {}
            self._owns_source = False
        if not is_bankable(self.source):
            raise ConfigError(f"the {self.source_name!r} animator cannot be banked: it does not implement "
                              "talkinghead.stages.BankableAnimator (bank_parameters, bank_render, ...); "
                              "use source='sadtalker' or source='viseme'")
        self.k, self.build_mode, self.seed = int(k), build, int(seed)
        self.pack = Path(pack) if pack is not None else None
        self.tts_spec, self.tts_config = tts, dict(tts_config or {})
        self.sentences = int(sentences) if sentences is not None else None
        self.bank_dir = Path(bank_dir) if bank_dir is not None else None
        self.interpolation, self.neighbours = interpolation, int(neighbours)
        self.flow_preset, self.flow_size, self.chunk_frames = flow_preset, int(flow_size), int(chunk_frames)
        self._build_lock = threading.Lock()

    # -- life cycle --------------------------------------------------------------------------------
    def load(self) -> None:
        """Nothing heavy: the source loads its cheap networks on first play and its renderer only to build."""

    def close(self) -> None:
        self.source.close()

    # -- where banks live ------------------------------------------------------------------------
    def build_key(self, portrait: Portrait, multiple_faces: str = "largest") -> str:
        """Hash of everything a bank depends on (portrait, source fingerprint, k, speech set, TTS, seed)."""
        tts = self.tts_spec if isinstance(self.tts_spec, str) else type(self.tts_spec).__qualname__
        spec = {"format": FORMAT_VERSION, "portrait": portrait.key, "faces": multiple_faces,
                "source": self.source_name, "fingerprint": self.source.bank_fingerprint(), "k": self.k,
                "speech": speech_set_id(), "sentences": self.sentences, "tts": [tts, self.tts_config],
                "seed": self.seed}
        return hashlib.sha256(json.dumps(spec, sort_keys=True, default=repr).encode()).hexdigest()[:24]

    def cache_path(self, portrait: Portrait, multiple_faces: str = "largest") -> Path:
        """The cached pack of this portrait and configuration (whether or not it exists yet)."""
        folder = self.bank_dir if self.bank_dir is not None else default_bank_dir()
        key = self.build_key(portrait, multiple_faces)
        return folder / f"{portrait.key[:12]}-{self.source_name}-k{self.k}-{key[:12]}{PACK_SUFFIX}"

    # -- build ---------------------------------------------------------------------------------------
    def build(self, portrait: Portrait, *, multiple_faces: str = "largest", progress: BuildProgress | None = None,
              force: bool = False) -> Path:
        """Build this portrait's bank into the cache (resuming an interrupted build) and return its path.

        Args:
            portrait: the portrait.
            multiple_faces: ``largest`` or ``refuse``.
            progress: ``progress(stage, done, total)``; stages ``speech`` and ``render``.
            force: rebuild even when the cached pack exists.

        Raises:
            NoFaceError, MultipleFacesError, FaceTooSmallError: from the source's ``prepare``.
            WeightsMissingError: the source's weights are not in the cache.
        """
        path = self.cache_path(portrait, multiple_faces)
        with self._build_lock:
            if path.is_file() and not force:
                return path
            key = self.build_key(portrait, multiple_faces)
            tts = self._tts()
            self.source.load()
            manifest = {"source": self.source_name, "source_config": _jsonable(self.source_config),
                        "fingerprint": self.source.bank_fingerprint(), "portrait": portrait.key,
                        "faces": multiple_faces, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
            bd = BuildDir(path)
            t0 = time.perf_counter()
            pack = build_bank(self.source, portrait, k=self.k, tts=tts, key=key, manifest=manifest, build_dir=bd,
                              multiple_faces=multiple_faces, seed=self.seed, sentences=self.sentences,
                              progress=progress)
            pack.manifest["build_seconds"] = round(time.perf_counter() - t0, 3)
            write_pack(pack, path)
            bd.discard()
            log.info("bank: %d frames of %s for portrait %s in %.1f s -> %s", pack.k, self.source_name,
                     portrait.key[:12], time.perf_counter() - t0, path)
            return path

    def _tts(self) -> Any:
        if not isinstance(self.tts_spec, str):
            tts = self.tts_spec
        else:
            from ...plugins import get_registry

            tts = get_registry().create("tts", self.tts_spec, self.tts_config)
        tts.load()
        return tts

    # -- prepare / play ------------------------------------------------------------------------------
    def prepare(self, portrait: Portrait, *, multiple_faces: str = "largest") -> BankPrepared:
        """Load this portrait's bank (the explicit ``pack``, or the cache; built first when ``build="auto"``)."""
        if self.pack is not None:
            pack, path = read_pack(self.pack), self.pack
            self._check_pack(pack, portrait, path)
        else:
            path = self.cache_path(portrait, multiple_faces)
            if not path.is_file():
                if self.build_mode == "never":
                    raise ConfigError(
                        f"no bank of this portrait for the {self.source_name!r} animator (k={self.k}) is cached; "
                        f"build it first: talkinghead bank build --image PORTRAIT --animator {self.source_name} "
                        f"-k {self.k} (or use build='auto')")
                log.warning("bank: building the %d-frame bank of this portrait with %r now (once; "
                            "`talkinghead bank build` does it ahead of time with a progress bar)", self.k,
                            self.source_name)
                self.build(portrait, multiple_faces=multiple_faces)
                if self._owns_source:  # playing needs only the cheap networks: free the renderer
                    self.source.close()
            pack = read_pack(path)
            self._check_pack(pack, portrait, path)
        return self.play(pack, path=path)

    def play(self, pack: BankPack, *, path: Path | None = None) -> BankPrepared:
        """The per-portrait play state for a loaded pack (warms the source's parameter networks)."""
        play = self.source.bank_restore(pack.state)
        player = BankPlayer(pack.states, pack.mean, pack.scale, pack.frames, interpolation=self.interpolation,
                            neighbours=self.neighbours, flow_size=self.flow_size, flow_preset=self.flow_preset)
        prepared = BankPrepared(pack, play, player, path)
        # warm: the first clip must not pay for loading the parameter networks
        self.source.bank_parameters(play, Audio(np.zeros(8000, np.float32), 16000), fps=25.0)
        return prepared

    def _check_pack(self, pack: BankPack, portrait: Portrait, path: Path) -> None:
        m = pack.manifest
        if m.get("source") != self.source_name:
            raise ConfigError(f"the avatar pack {path} was built with the {m.get('source')!r} animator, not "
                              f"{self.source_name!r}; use source={m.get('source')!r}")
        mine = {k: v for k, v in self.source.bank_fingerprint().items() if k != "weights"}
        theirs = {k: v for k, v in dict(m.get("fingerprint") or {}).items() if k != "weights"}
        if json.dumps(mine, sort_keys=True, default=repr) != json.dumps(theirs, sort_keys=True, default=repr):
            diff = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
            raise ConfigError(f"the avatar pack {path} was built with another {self.source_name} configuration "
                              f"(differs in: {', '.join(diff)}); rebuild it or match those options")
        if m.get("portrait") != portrait.key:
            raise ConfigError(f"the avatar pack {path} was built for another portrait; pass the portrait it was "
                              "built from, or build a pack for this one with `talkinghead bank build`")

    def animate(self, prepared: BankPrepared, audio: Audio, *, fps: float,
                progress: ProgressCallback | None = None) -> Iterator[FrameChunk]:
        """Yield ``frame_count(audio.duration, fps)`` frames in chunks of ``chunk_frames``."""
        if not isinstance(prepared, BankPrepared):
            raise ConfigError("animate() needs the result of this animator's prepare()")
        if fps <= 0:
            raise ConfigError(f"fps must be positive, got {fps}")
        n = frame_count(audio.duration, fps)
        d = prepared.pack.states.shape[1]
        stream = getattr(self.source, "bank_parameter_stream", None)
        blocks = (stream(prepared.play, audio, fps=fps) if callable(stream)
                  else iter([self.source.bank_parameters(prepared.play, audio, fps=fps)]))
        pending = np.zeros((0, d), np.float32)
        start = 0
        for block in blocks:
            block = np.asarray(block, np.float32)
            if block.ndim != 2 or block.shape[1] != d or start + len(pending) + len(block) > n:
                raise StageError("animator", self.name, f"the {self.source_name} source gave parameters of shape "
                                 f"{block.shape} after {start + len(pending)} of {n} frames of {d} values")
            pending = np.concatenate([pending, block]) if len(pending) else block
            while len(pending) >= self.chunk_frames or (len(pending) and start + len(pending) == n):
                take = pending[: self.chunk_frames]
                pending = pending[len(take):]
                region = prepared.player.render(take)
                yield FrameChunk(np.ascontiguousarray(self.source.bank_compose(prepared.play, region)), start)
                start += len(take)
                if progress is not None:
                    progress(start, n)
        if start != n:
            raise StageError("animator", self.name, f"the {self.source_name} source gave parameters for {start} "
                             f"of {n} frames")

    def export(self, prepared: BankPrepared, path: str | os.PathLike) -> Path:
        """Write the portrait's bank to ``path`` as an avatar pack."""
        return write_pack(prepared.pack, path)


def _jsonable(config: Mapping[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(dict(config), default=repr))
