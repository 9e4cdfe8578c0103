"""What weight files exist: :class:`WeightFile`, :class:`WeightBundle`, the built-in catalogue and
the :class:`WeightRegistry` of both.

A backend declares the files it needs as a class attribute, usually picked from the catalogue::

    class MyEnhancer(BackendBase):
        stage, name = "enhancer", "myenhancer"
        weights = catalog.select("retinaface-resnet50") + (WeightFile(...),)

:func:`build_registry` collects the catalogue, then every registered backend's ``weights`` (built-in
or third-party), and remembers which backend needs which file (``talkinghead weights list`` shows
it). Each backend also gets a bundle named ``"<stage>:<backend name>"`` (``"animator:sadtalker"``).

Sources of the built-in entries (see ``docs/weights.md``): SadTalker's ``scripts/download_models.sh``
(GitHub release ``OpenTalker/SadTalker`` ``v0.0.2-rc``, mirrored on the Hugging Face model repo
``vinthony/SadTalker-V002rc``; legacy set from ``Winfredy/SadTalker`` ``v0.0.2``, mirrored in the
Hugging Face space ``vinthony/SadTalker``), the facexlib releases and the GFPGAN releases.
SadTalker's SHA-256 values and sizes come from the Hugging Face LFS pointers of the official
mirrors. facexlib and GFPGAN publish no hash themselves; their SHA-256 values and sizes are the
ones published, identically, by several independent Hugging Face LFS pointers of mirrors of those
release files and by distribution packages that build from the release URLs (evidence in
``docs/weights.md``). Every built-in file therefore has a pinned SHA-256.

The licence strings give the licence of the repository that publishes each file; weights trained
on third-party data may carry further terms, so check upstream before commercial use.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from ..errors import ConfigError

log = logging.getLogger(__name__)

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class WeightFile:
    """One downloadable file.

    Attributes:
        name: Unique identifier users type (``"sadtalker-256"``).
        filename: File name on disk, inside the group's folder of the cache.
        urls: Ordered mirrors, tried first to last. ``https://...`` (or ``http://``) URLs are
            fetched with HTTP range resume; ``hf://[spaces/|datasets/]owner/repo[@revision]/path``
            URLs are fetched from the Hugging Face Hub with ``huggingface_hub``.
        sha256: Lower-case hex SHA-256 of the file, or None where no hash is published. A file
            without a hash is only downloaded when the user accepts trust on first use
            (``--trust-unverified``); the hash of that download is then recorded in the cache's
            ``checksums.json`` and enforced from then on.
        size: Size in bytes, or None if unknown.
        licence: Licence of the file (SPDX id or a short note), shown by ``weights list``.
        group: Folder and group name in the cache (``"sadtalker"``, ``"gfpgan"``...).
        description: One line saying what the file is for.
    """

    name: str
    filename: str
    urls: tuple[str, ...]
    sha256: str | None = None
    size: int | None = None
    licence: str = "unknown"
    group: str = "misc"
    description: str = ""

    def __post_init__(self) -> None:
        if not _NAME_RE.match(self.name):
            raise ConfigError(f"weight file name {self.name!r} must be letters, digits, '.', '_' or '-'")
        if not _NAME_RE.match(self.group):
            raise ConfigError(f"weight group {self.group!r} of {self.name!r} must be letters, digits, '.', '_' or '-'")
        if not self.filename or "/" in self.filename or "\\" in self.filename or self.filename in (".", ".."):
            raise ConfigError(f"weight file {self.name!r}: filename {self.filename!r} must be a plain file name")
        if isinstance(self.urls, str) or not isinstance(self.urls, Sequence):
            raise ConfigError(f"weight file {self.name!r}: urls must be a tuple of URLs")
        object.__setattr__(self, "urls", tuple(self.urls))
        for url in self.urls:
            if not url.startswith(("https://", "http://", "hf://")):
                raise ConfigError(f"weight file {self.name!r}: URL {url!r} must start with https://, http:// or hf://")
        if self.sha256 is not None:
            sha = self.sha256.lower()
            if not _SHA_RE.match(sha):
                raise ConfigError(f"weight file {self.name!r}: sha256 must be 64 hex digits, got {self.sha256!r}")
            object.__setattr__(self, "sha256", sha)
        if self.size is not None and (not isinstance(self.size, int) or self.size < 0):
            raise ConfigError(f"weight file {self.name!r}: size must be a non-negative int or None")


@dataclass(frozen=True)
class WeightBundle:
    """A named set of files, e.g. everything one backend needs.

    Attributes:
        name: The bundle's name (``"sadtalker-full"``).
        members: File names, group names or other bundle names.
        description: One line for ``weights list``.
    """

    name: str
    members: tuple[str, ...]
    description: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "members", tuple(self.members))


# ----------------------------------------------------------------------------- the catalogue

_ST_GH = "https://github.com/OpenTalker/SadTalker/releases/download/v0.0.2-rc/"
_ST_HF = "hf://vinthony/SadTalker-V002rc@main/"
_ST_LEGACY_GH = "https://github.com/Winfredy/SadTalker/releases/download/v0.0.2/"
_ST_LEGACY_HF = "hf://spaces/vinthony/SadTalker@main/checkpoints/"
_FACEXLIB = "https://github.com/xinntao/facexlib/releases/download/"
_GFPGAN = "https://github.com/TencentARC/GFPGAN/releases/download/"
_CAMENDURU = "hf://camenduru/SadTalker@main/new/gfpgan/weights/"
_ST_LICENCE = "Apache-2.0 (SadTalker repository)"
_FACEXLIB_LICENCE = "MIT (facexlib repository)"


def _sadtalker(name: str, filename: str, size: int | None, sha256: str, description: str) -> WeightFile:
    return WeightFile(name, filename, (_ST_GH + filename, _ST_HF + filename), sha256, size, _ST_LICENCE,
                      "sadtalker", description)


def _legacy(name: str, filename: str, sha256: str, description: str) -> WeightFile:
    description += "; the sadtalker animator's alternative to sadtalker-256 (used when that is absent)"
    return WeightFile(name, filename, (_ST_LEGACY_GH + filename, _ST_LEGACY_HF + filename), sha256, None,
                      _ST_LICENCE, "sadtalker-legacy", description)


def _facexlib(name: str, release: str, filename: str, size: int, sha256: str, group: str, description: str,
              hf_mirror: bool = False) -> WeightFile:
    urls = (_FACEXLIB + release + "/" + filename,) + ((_CAMENDURU + filename,) if hf_mirror else ())
    return WeightFile(name, filename, urls, sha256, size, _FACEXLIB_LICENCE, group, description)


FILES: tuple[WeightFile, ...] = (
    _sadtalker("sadtalker-256", "SadTalker_V0.0.2_256.safetensors", 725066984,
               "c211f5d6de003516bf1bbda9f47049a4c9c99133b1ab565c6961e5af16477bff",
               "SadTalker 0.0.2: ExpNet, PoseVAE, ReconNet, keypoint detector and 256 px renderer"),
    _sadtalker("sadtalker-512", "SadTalker_V0.0.2_512.safetensors", 725066984,
               "0e063f7ff5258240bdb0f7690783a7b1374e6a4a81ce8fa33456f4cd49694340",
               "SadTalker 0.0.2 with the 512 px renderer"),
    _sadtalker("mapping-00229", "mapping_00229-model.pth.tar", 155521183,
               "62a1e06006cc963220f6477438518ed86e9788226c62ae382ddc42fbcefb83f1",
               "SadTalker MappingNet, 70-d input (crop/resize modes)"),
    _sadtalker("mapping-00109", "mapping_00109-model.pth.tar", 155779231,
               "84a8642468a3fcfdd9ab6be955267043116c2bec2284686a5262f1eaf017f64c",
               "SadTalker MappingNet, 73-d input (full modes)"),
    _legacy("sadtalker-legacy-audio2exp", "auido2exp_00300-model.pth",
            "b7608f0e6b477e50e03ca569ac5b04a841b9217f89d502862fc78fda4e46dec4",
            "legacy SadTalker ExpNet (SimpleWrapperV2)"),
    _legacy("sadtalker-legacy-audio2pose", "auido2pose_00140-model.pth",
            "4fba6701852dc57efbed25b1e4276e4ff752941860d69fc4429f08a02326ebce",
            "legacy SadTalker PoseVAE (Audio2Pose)"),
    _legacy("sadtalker-legacy-facevid2vid", "facevid2vid_00189-model.pth.tar",
            "fbad01d46f0510276dc4521322dde6824a873a4222cd0740c85762e7067ea71d",
            "legacy SadTalker face renderer (generator, keypoint detector, head-pose estimator)"),
    _legacy("sadtalker-legacy-recon", "epoch_20.pth",
            "6d17a6b23457b521801baae583cb6a58f7238fe6721fc3d65d76407460e9149b",
            "legacy SadTalker 3DMM ReconNet"),
    _facexlib("retinaface-mobilenet0.25", "v0.1.0", "detection_mobilenet0.25_Final.pth", 1789735,
              "2979b33ffafda5d74b6948cd7a5b9a7a62f62b949cef24e95fd15d2883a65220", "retinaface",
              "RetinaFace face detector, MobileNet-0.25 backbone (small, fast)"),
    _facexlib("retinaface-resnet50", "v0.1.0", "detection_Resnet50_Final.pth", 109497761,
              "6d1de9c2944f2ccddca5f5e010ea5ae64a39845a86311af6fdf30841b0a5a16d", "retinaface",
              "RetinaFace face detector, ResNet-50 backbone (used by SadTalker and GFPGAN)", hf_mirror=True),
    _facexlib("parsenet", "v0.2.2", "parsing_parsenet.pth", 85331193,
              "3d558d8d0e42c20224f13cf5a29c79eba2d59913419f945545d8cf7b72920de2", "parsenet",
              "ParseNet face parsing (soft paste-back mask for GFPGAN)"),
    _facexlib("awing-wflw", "v0.1.0", "alignment_WFLW_4HG.pth", 193670248,
              "bbfd137307a4c7debd5c283b9b0ce539466cee417ac0a155e184d857f9f2899c", "awing",
              "AWing FAN 98-point face landmarks (SadTalker preprocessing)", hf_mirror=True),
    WeightFile(
        "gfpgan-v1.4", "GFPGANv1.4.pth",
        (_GFPGAN + "v1.3.0/GFPGANv1.4.pth", _GFPGAN + "v1.3.4/GFPGANv1.4.pth"),
        "e2cd4703ab14f4d01fd1383a8a8b266f9a5833dacee8e6a79d3bf21a1b6be5ad", 348632874,
        "Apache-2.0 (GFPGAN repository; some parts under other licences, see upstream)", "gfpgan",
        "GFPGAN v1.4 face restoration (enhancer)",
    ),
)

BUNDLES: tuple[WeightBundle, ...] = (
    WeightBundle(
        "sadtalker-full",
        ("sadtalker-256", "mapping-00229", "mapping-00109", "retinaface-resnet50", "awing-wflw"),
        "everything the SadTalker animator needs at 256 px",
    ),
    WeightBundle(
        "enhancer-gfpgan",
        ("gfpgan-v1.4", "retinaface-mobilenet0.25", "retinaface-resnet50", "parsenet"),
        "everything the GFPGAN enhancer needs (default MobileNet-0.25 detector, the upstream ResNet-50 one, ParseNet)",
    ),
)

_BY_NAME = {wf.name: wf for wf in FILES}


def select(*names: str) -> tuple[WeightFile, ...]:
    """Catalogue entries by name, for a backend's ``weights`` attribute.

    Raises:
        KeyError: a name is not in the catalogue.
    """
    return tuple(_BY_NAME[n] for n in names)


def entry(name: str) -> WeightFile:
    """One catalogue entry by name (``entry("gfpgan-v1.4")``).

    Raises:
        KeyError: the name is not in the catalogue.
    """
    return _BY_NAME[name]


# ----------------------------------------------------------------------------- the registry


@dataclass
class WeightRegistry:
    """Files and bundles by name, and which backends need each file. Build one with
    :func:`build_registry` or fill it by hand.

    A file is addressed by its unique ``name``; a selector may also be a group name (every file
    whose ``group`` is that name), a bundle name, or ``"all"``.
    """

    files: dict[str, WeightFile] = field(default_factory=dict)
    bundles: dict[str, WeightBundle] = field(default_factory=dict)
    needed_by: dict[str, list[str]] = field(default_factory=dict)

    def add(self, wf: WeightFile, *, source: str = "talkinghead") -> bool:
        """Add a file. Re-adding an identical entry is a no-op; a different one with the same
        name (or the same cache path) is ignored with a warning: the first definition wins, so
        built-ins cannot be hijacked by a plug-in.

        Returns:
            Whether ``wf`` is the registered entry of its name afterwards.
        """
        if not isinstance(wf, WeightFile):
            raise ConfigError(f"{source} declares a weight entry that is not a WeightFile: {wf!r}")
        old = self.files.get(wf.name)
        if old is not None:
            if old != wf:
                log.warning("weight file %r from %s differs from the one already registered; ignored", wf.name, source)
            return old == wf
        clash = [f for f in self.files.values() if f.group == wf.group and f.filename == wf.filename]
        if clash:
            log.warning(
                "weight file %r from %s has the same path %s/%s as %r; ignored",
                wf.name, source, wf.group, wf.filename, clash[0].name,
            )
            return False
        self.files[wf.name] = wf
        return True

    def add_bundle(self, bundle: WeightBundle) -> None:
        """Add (or replace) a bundle."""
        self.bundles[bundle.name] = bundle

    def add_backend(self, stage: str, name: str, declared: object, *, plugin: str = "talkinghead") -> None:
        """Register a backend's ``weights`` attribute: its files, the bundle ``"<stage>:<name>"``
        and the backend as a user of each file."""
        if isinstance(declared, WeightFile):
            declared = (declared,)
        if not isinstance(declared, Iterable) or isinstance(declared, (str, bytes)):
            raise ConfigError(f"{stage} backend {name!r} ({plugin}): weights must be a tuple of WeightFile")
        user = f"{stage}:{name}"
        names = []
        for wf in declared:
            if self.add(wf, source=f"{stage} backend {name!r} ({plugin})"):
                names.append(wf.name)
                users = self.needed_by.setdefault(wf.name, [])
                if user not in users:
                    users.append(user)
        if names:
            self.add_bundle(WeightBundle(user, tuple(names), f"files the {stage} backend {name!r} needs"))

    def groups(self) -> dict[str, list[WeightFile]]:
        """Files by group, groups and files in registration order."""
        out: dict[str, list[WeightFile]] = {}
        for wf in self.files.values():
            out.setdefault(wf.group, []).append(wf)
        return out

    def __iter__(self) -> Iterator[WeightFile]:
        return iter(self.files.values())

    def __contains__(self, name: object) -> bool:
        return name in self.files

    def get(self, name: str) -> WeightFile:
        """The file called ``name``.

        Raises:
            ConfigError: no file has that name.
        """
        try:
            return self.files[name]
        except KeyError:
            raise ConfigError(
                f"no weight file named {name!r}; run `talkinghead weights list` to see the known files"
            ) from None

    def resolve(self, selectors: str | Iterable[str]) -> list[WeightFile]:
        """Expand file, group and bundle names (and ``"all"``) into files, without duplicates.

        Raises:
            ConfigError: a selector names nothing known.
        """
        if isinstance(selectors, str):
            selectors = [selectors]
        out: dict[str, WeightFile] = {}
        for sel in selectors:
            for wf in self._expand(sel, seen=()):
                out.setdefault(wf.name, wf)
        return list(out.values())

    def _expand(self, sel: str, seen: tuple[str, ...]) -> list[WeightFile]:
        if sel in seen:
            return []
        if sel == "all":
            return list(self.files.values())
        if sel in self.files:
            return [self.files[sel]]
        if sel in self.bundles:
            found: list[WeightFile] = []
            for member in self.bundles[sel].members:
                found.extend(self._expand(member, seen + (sel,)))
            return found
        group = [wf for wf in self.files.values() if wf.group == sel]
        if group:
            return group
        known = sorted(set(self.files) | set(self.bundles) | {wf.group for wf in self.files.values()})
        raise ConfigError(
            f"no weight file, group or bundle named {sel!r}; known: {', '.join(known) or 'none'}. "
            "Run `talkinghead weights list` to see them all."
        )


def build_registry(*, backends: bool = True, catalog: bool = True) -> WeightRegistry:
    """The registry of every known file: the built-in catalogue, then each backend's ``weights``.

    Args:
        backends: Also collect ``weights`` declared by registered backends (built-in and plug-in).
        catalog: Include the built-in catalogue.
    """
    reg = WeightRegistry()
    if catalog:
        for wf in FILES:
            reg.add(wf)
        for bundle in BUNDLES:
            reg.add_bundle(bundle)
    if backends:
        from ..plugins import get_registry  # plugins imports nothing of the weights package

        for info in get_registry().all():
            declared = getattr(info.cls, "weights", ()) or ()
            try:
                reg.add_backend(info.stage, info.name, declared, plugin=info.plugin)
            except ConfigError as exc:
                log.warning("%s", exc)
    return reg
