"""What weight files exist: :class:`WeightFile`, :class:`WeightBundle` and the registry of both.

The registry is filled from two places, in this order:

1. the built-in catalogue (:mod:`talkinghead.weights.catalog`), which lists the official files of
   the models talkinghead ports (SadTalker, RetinaFace, ParseNet, AWing, GFPGAN);
2. every registered backend, built-in or third-party: a backend class declares the files it needs
   as a class attribute ``weights: tuple[WeightFile, ...]``. The registry walks
   :func:`talkinghead.plugins.get_registry` and adds those files, plus a bundle named
   ``"<stage>:<backend name>"`` (e.g. ``"animator:sadtalker"``) holding exactly them, so a plug-in
   gets ``talkinghead weights download animator:myplugin`` for free.

A file is addressed by its unique ``name``; a selector may also be a group name (every file whose
``group`` is that name), a bundle name, or ``"all"``.
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
        sha256: Lower-case hex SHA-256 of the file, or None where upstream publishes none; then
            the size (if known) is checked and the hash of the first verified download is
            recorded in the cache's ``checksums.json`` and enforced from then on.
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


@dataclass
class WeightRegistry:
    """Files and bundles by name. Build one with :func:`build_registry` or fill it by hand."""

    files: dict[str, WeightFile] = field(default_factory=dict)
    bundles: dict[str, WeightBundle] = field(default_factory=dict)

    def add(self, wf: WeightFile, *, source: str = "talkinghead") -> None:
        """Add a file. Re-adding an identical entry is a no-op; a different one with the same
        name is ignored with a warning (the first definition wins, so built-ins cannot be
        hijacked by a plug-in)."""
        if not isinstance(wf, WeightFile):
            raise ConfigError(f"{source} declares a weight entry that is not a WeightFile: {wf!r}")
        old = self.files.get(wf.name)
        if old is not None:
            if old != wf:
                log.warning("weight file %r from %s differs from the one already registered; ignored", wf.name, source)
            return
        clash = [f for f in self.files.values() if f.group == wf.group and f.filename == wf.filename]
        if clash:
            log.warning(
                "weight file %r from %s has the same path %s/%s as %r; ignored",
                wf.name, source, wf.group, wf.filename, clash[0].name,
            )
            return
        self.files[wf.name] = wf

    def add_bundle(self, bundle: WeightBundle) -> None:
        """Add (or replace) a bundle."""
        self.bundles[bundle.name] = bundle

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
        from . import catalog as _catalog

        for wf in _catalog.FILES:
            reg.add(wf)
        for bundle in _catalog.BUNDLES:
            reg.add_bundle(bundle)
    if backends:
        from ..plugins import get_registry

        for info in get_registry().all():
            declared = getattr(info.cls, "weights", ()) or ()
            if isinstance(declared, WeightFile):
                declared = (declared,)
            names = []
            for wf in declared:
                reg.add(wf, source=f"{info.stage} backend {info.name!r} ({info.plugin})")
                if isinstance(wf, WeightFile):
                    names.append(wf.name)
            if names:
                reg.add_bundle(
                    WeightBundle(
                        f"{info.stage}:{info.name}",
                        tuple(names),
                        f"files the {info.stage} backend {info.name!r} needs",
                    )
                )
    return reg
