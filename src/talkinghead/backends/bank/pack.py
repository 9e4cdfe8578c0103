"""Avatar packs: a bank in one portable file, and the folder a build resumes from.

An avatar pack (``.thbank``) is a zip archive::

    manifest.json        format, version, source animator + fingerprint, portrait key, K, build info
    states.npy           (K, D) float32 driving parameters of the bank frames
    mean.npy, scale.npy  (D,) float32: parameters are compared as (p - mean) / scale
    frames.npy           (K, h, w, 3) uint8 region frames rendered by the source animator
    state/<name>.npy     the source's play state (``bank_state``): what playing needs of the portrait

Arrays are read with ``allow_pickle=False``; sizes are checked against the manifest before
anything is decompressed, so a hostile or truncated file is refused with a clear error instead of
exhausting memory. Packs are written through :func:`talkinghead.output.atomic_file`.

While a bank is built, ``<pack>.part/`` holds the plan (states, scale, manifest) and one ``.npy`` per
rendered frame, each written atomically: an interrupted build resumes where it stopped.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import shutil
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import ConfigError, ModelLoadError

log = logging.getLogger(__name__)

__all__ = ["BankPack", "BuildDir", "FORMAT", "FORMAT_VERSION", "PACK_SUFFIX", "read_pack", "write_pack"]

FORMAT = "talkinghead-bank"
FORMAT_VERSION = 1
PACK_SUFFIX = ".thbank"
#: Largest uncompressed member accepted (frames of K=1024 states at 512² are 805 MB).
MAX_MEMBER_BYTES = 2 << 30
MAX_STATES = 4096
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


@dataclass(eq=False)
class BankPack:
    """A built bank.

    Attributes:
        manifest: JSON-able description (source, fingerprint, portrait key, K, build info).
        states: (K, D) float32 driving parameters of the frames.
        mean, scale: (D,) float32 normalisation of the parameters.
        frames: (K, h, w, 3) uint8 region frames.
        state: the source animator's play state (named arrays).
    """

    manifest: dict[str, Any]
    states: np.ndarray
    mean: np.ndarray
    scale: np.ndarray
    frames: np.ndarray
    state: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()

    @property
    def k(self) -> int:
        return int(self.states.shape[0])

    @property
    def source(self) -> str:
        return str(self.manifest.get("source", ""))

    def validate(self) -> None:
        """Raise :class:`ModelLoadError` when the arrays are inconsistent."""
        s, f = self.states, self.frames
        problems = []
        if s.ndim != 2 or s.dtype != np.float32 or not 1 <= s.shape[0] <= MAX_STATES or s.shape[1] < 1:
            problems.append(f"states {s.dtype} {s.shape}")
        elif not np.isfinite(s).all():
            problems.append("states are not finite")
        d = s.shape[-1] if s.ndim == 2 else -1
        for name, v in (("mean", self.mean), ("scale", self.scale)):
            if v.shape != (d,) or v.dtype != np.float32 or not np.isfinite(v).all():
                problems.append(f"{name} {v.dtype} {v.shape}")
        if self.scale.shape == (d,) and (self.scale <= 0).any():
            problems.append("scale has non-positive values")
        if f.ndim != 4 or f.dtype != np.uint8 or f.shape[-1] != 3 or f.shape[0] != s.shape[0] or min(f.shape[1:3]) < 2:
            problems.append(f"frames {f.dtype} {f.shape} for {s.shape[0] if s.ndim else '?'} states")
        if self.manifest.get("format") != FORMAT:
            problems.append(f"format {self.manifest.get('format')!r}")
        for name in self.state:
            if not _NAME.match(name):
                problems.append(f"state name {name!r}")
        if problems:
            raise ModelLoadError("invalid avatar pack: " + "; ".join(problems) + ". Rebuild it with "
                                 "`talkinghead bank build`.")


def _npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(a), allow_pickle=False)
    return buf.getvalue()


def write_pack(pack: BankPack, path: str | os.PathLike) -> Path:
    """Write ``pack`` to ``path`` atomically (:func:`talkinghead.output.atomic_file`)."""
    from ...output import atomic_file

    path = Path(path)
    pack.validate()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as z:
        z.writestr("manifest.json", json.dumps(pack.manifest, indent=1, sort_keys=True))
        for name, arr in (("states", pack.states), ("mean", pack.mean), ("scale", pack.scale),
                          ("frames", pack.frames)):
            z.writestr(f"{name}.npy", _npy_bytes(arr))
        for name, arr in pack.state.items():
            z.writestr(f"state/{name}.npy", _npy_bytes(np.asarray(arr)))
    return path


def read_pack(path: str | os.PathLike) -> BankPack:
    """Read and check an avatar pack.

    Raises:
        ConfigError: the file does not exist.
        ModelLoadError: it is not a valid pack (truncated, corrupt, wrong format or version).
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"avatar pack {path} does not exist; build one with `talkinghead bank build "
                          f"--image PORTRAIT --animator SOURCE -o {path.name}`")
    try:
        with zipfile.ZipFile(path) as z:
            infos = {i.filename: i for i in z.infolist()}
            for info in infos.values():
                if info.file_size > MAX_MEMBER_BYTES:
                    raise ModelLoadError(f"{path}: member {info.filename} is {info.file_size} bytes, over the limit")
            try:
                manifest = json.loads(z.read("manifest.json").decode("utf-8"))
            except KeyError:
                raise ModelLoadError(f"{path} is not an avatar pack (no manifest.json)") from None
            if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
                raise ModelLoadError(f"{path} is not an avatar pack (format {manifest.get('format')!r})"
                                     if isinstance(manifest, dict) else f"{path}: manifest is not an object")
            if manifest.get("version") != FORMAT_VERSION:
                raise ModelLoadError(f"{path} is an avatar pack of format version {manifest.get('version')!r}; "
                                     f"this talkinghead reads version {FORMAT_VERSION}. Rebuild it.")

            def arr(name: str) -> np.ndarray:
                if name not in infos:
                    raise ModelLoadError(f"{path}: {name} is missing; the pack is incomplete")
                with z.open(name) as fh:
                    return np.load(io.BytesIO(fh.read()), allow_pickle=False)

            state = {n[len("state/"):-len(".npy")]: arr(n) for n in infos
                     if n.startswith("state/") and n.endswith(".npy")}
            pack = BankPack(manifest, arr("states.npy"), arr("mean.npy"), arr("scale.npy"), arr("frames.npy"), state)
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, UnicodeDecodeError, zipfile.LargeZipFile) as exc:
        raise ModelLoadError(f"{path} is not a readable avatar pack ({type(exc).__name__}: {exc}); "
                             "rebuild it with `talkinghead bank build`") from exc
    return pack


class BuildDir:
    """The resumable state of one build: ``<pack>.part/`` next to the pack it will become.

    ``plan.npz`` (states, mean, scale), ``plan.json`` (the manifest so far, including the build key
    the plan belongs to), ``state/*.npy`` and ``frame_00000.npy``...; every file is written to a
    temporary name and renamed, so a build killed at any moment leaves only whole files behind.
    """

    def __init__(self, pack_path: str | os.PathLike) -> None:
        self.pack_path = Path(pack_path)
        self.path = self.pack_path.with_name(self.pack_path.name + ".part")

    # -- plan ----------------------------------------------------------------------------------
    def load_plan(self, key: str) -> tuple[dict[str, Any], dict[str, np.ndarray], dict[str, np.ndarray]] | None:
        """The saved plan for build ``key`` (manifest, arrays, play state), or None (no plan, or another key)."""
        try:
            manifest = json.loads((self.path / "plan.json").read_text(encoding="utf-8"))
            if manifest.get("build_key") != key:
                log.info("bank: %s holds another build; starting over", self.path)
                self.discard()
                return None
            with np.load(self.path / "plan.npz", allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
            state = {p.stem: np.load(p, allow_pickle=False) for p in sorted((self.path / "state").glob("*.npy"))}
            return manifest, arrays, state
        except FileNotFoundError:
            return None
        except (OSError, ValueError, json.JSONDecodeError) as exc:
            log.warning("bank: ignoring the unreadable partial build %s (%s)", self.path, exc)
            self.discard()
            return None

    def save_plan(self, manifest: dict[str, Any], arrays: dict[str, np.ndarray], state: dict[str, np.ndarray]) -> None:
        (self.path / "state").mkdir(parents=True, exist_ok=True)
        for name, a in state.items():
            self._atomic(self.path / "state" / f"{name}.npy",
                         lambda fh, a=a: np.save(fh, np.asarray(a), allow_pickle=False))
        self._atomic(self.path / "plan.npz", lambda fh: np.savez(fh, **arrays))
        self._atomic(self.path / "plan.json", lambda fh: fh.write(json.dumps(manifest, sort_keys=True).encode()))

    # -- frames ----------------------------------------------------------------------------------
    def frame_path(self, i: int) -> Path:
        return self.path / f"frame_{i:05d}.npy"

    def load_frame(self, i: int) -> np.ndarray | None:
        try:
            return np.load(self.frame_path(i), allow_pickle=False)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.warning("bank: re-rendering frame %d (%s)", i, exc)
            return None

    def save_frame(self, i: int, frame: np.ndarray) -> None:
        self._atomic(self.frame_path(i), lambda fh: np.save(fh, np.ascontiguousarray(frame), allow_pickle=False))

    def discard(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    def _atomic(self, path: Path, write) -> None:  # type: ignore[no-untyped-def]
        from ...output import atomic_file

        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(path) as tmp, open(tmp, "wb") as fh:
            write(fh)
