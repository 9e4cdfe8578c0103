"""The one plug-in manager and the backend registry built from it.

Built-in backends live in :mod:`talkinghead.backends`, one module per backend, each with its own
``register_backends`` hook implementation (:data:`DEFAULT_PLUGINS`); third-party plug-ins are
found through the ``talkinghead`` entry-point group. Both are registered with the one plug-in
manager the same way, and the registry is filled by calling the hook through ``pm.hook``. Set ``TALKINGHEAD_LOAD_PLUGINS`` to a comma-separated allow-list of plug-in
distribution names to load only those (an empty value loads no third-party plug-in).
"""

from __future__ import annotations

import importlib
import inspect
import logging
import os
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import metadata
from typing import TYPE_CHECKING, Any

import pluggy

from . import hookspecs
from .errors import BackendNotFoundError, ConfigError
from .stages import STAGES
from .text import UnspeakableTextError, check_scripts

if TYPE_CHECKING:  # pragma: no cover
    from .values import VoiceProfile

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "talkinghead"
ALLOW_LIST_ENV = "TALKINGHEAD_LOAD_PLUGINS"

#: Modules of the built-in backends; each implements ``register_backends`` itself.
DEFAULT_PLUGINS: tuple[str, ...] = (
    "talkinghead.backends.piper",
    "talkinghead.backends.espeak",
    "talkinghead.backends.openai",
    "talkinghead.backends.azure_tts",
    "talkinghead.backends.faster_whisper",
    "talkinghead.backends.openai_whisper",
    "talkinghead.backends.llama_cpp",
    "talkinghead.backends.mp4",
    "talkinghead.backends.viseme",
    "talkinghead.backends.sadtalker",
    "talkinghead.backends.bank",
    "talkinghead.backends.gfpgan",
)


@dataclass(frozen=True)
class BackendInfo:
    """A registered backend: its class and where it came from."""

    stage: str
    name: str
    cls: type
    plugin: str  # the distribution (or "talkinghead" for built-ins) that provides it

    @property
    def capabilities(self) -> frozenset[str]:
        return frozenset(getattr(self.cls, "capabilities", frozenset()))

    @property
    def description(self) -> str:
        doc = inspect.getdoc(self.cls) or ""
        return doc.splitlines()[0] if doc else ""


class Registry:
    """Backends by stage and name, filled from the plug-in manager."""

    def __init__(self) -> None:
        self._backends: dict[tuple[str, str], BackendInfo] = {}

    def register(self, cls: type, plugin: str = "talkinghead") -> None:
        stage = getattr(cls, "stage", None)
        name = getattr(cls, "name", None)
        if stage not in STAGES:
            raise ConfigError(f"{cls.__qualname__} declares stage {stage!r}; expected one of {', '.join(STAGES)}")
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{cls.__qualname__} must declare a non-empty string class attribute `name`")
        key = (stage, name)
        if key in self._backends and self._backends[key].cls is not cls:
            log.warning(
                "%s backend %r from %s replaces the one from %s", stage, name, plugin, self._backends[key].plugin
            )
        self._backends[key] = BackendInfo(stage, name, cls, plugin)

    def get(self, stage: str, name: str) -> BackendInfo:
        if stage not in STAGES:
            raise ConfigError(f"unknown stage {stage!r}; expected one of {', '.join(STAGES)}")
        try:
            return self._backends[(stage, name)]
        except KeyError:
            raise BackendNotFoundError(stage, name, self.names(stage)) from None

    def names(self, stage: str) -> list[str]:
        return sorted(n for (s, n) in self._backends if s == stage)

    def all(self) -> list[BackendInfo]:
        order = {s: i for i, s in enumerate(STAGES)}
        return sorted(self._backends.values(), key=lambda b: (order[b.stage], b.name))

    def create(self, stage: str, name: str, config: Mapping[str, Any] | None = None) -> Any:
        """Construct the backend ``name`` of ``stage`` with keyword ``config``."""
        info = self.get(stage, name)
        config = dict(config or {})
        params = _config_parameters(info.cls)
        if params is not None:
            unknown = sorted(set(config) - set(params))
            if unknown:
                raise ConfigError(
                    f"{stage} backend {name!r} has no option {', '.join(map(repr, unknown))}; "
                    f"options: {', '.join(sorted(params)) or 'none'}"
                )
        try:
            return info.cls(**config)
        except TypeError as exc:
            raise ConfigError(f"bad configuration for {stage} backend {name!r}: {exc}") from exc


def _config_parameters(cls: type) -> dict[str, inspect.Parameter] | None:
    """Keyword parameters of the backend constructor, or None if it takes ``**kwargs``."""
    try:
        sig = inspect.signature(cls)
    except (TypeError, ValueError):
        return None
    params = {}
    for p in sig.parameters.values():
        if p.kind is p.VAR_KEYWORD:
            return None
        if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD):
            params[p.name] = p
    return params


def config_options(stage: str, name: str) -> dict[str, inspect.Parameter]:
    """The constructor options of a backend (for help texts and typed CLI parsing)."""
    return _config_parameters(get_registry().get(stage, name).cls) or {}


def _allow_list() -> set[str] | None:
    value = os.environ.get(ALLOW_LIST_ENV)
    if value is None:
        return None
    return {v.strip() for v in value.split(",") if v.strip()}


_lock = threading.Lock()
_pm: pluggy.PluginManager | None = None
_registry: Registry | None = None
_dists: dict[str, str] = {}  # top-level package of an entry-point plug-in -> its distribution


def _package_of(obj: object) -> str:
    """The top-level package an object (a module, a class, a plug-in object) is defined in."""
    module = obj.__name__ if inspect.ismodule(obj) else getattr(obj, "__module__", None) or type(obj).__module__
    return module.split(".")[0]


def get_plugin_manager() -> pluggy.PluginManager:
    """The process's plug-in manager: built-ins plus entry-point plug-ins, loaded once."""
    global _pm
    with _lock:
        if _pm is None:
            pm = pluggy.PluginManager(hookspecs.PROJECT)
            pm.add_hookspecs(hookspecs)
            for modname in DEFAULT_PLUGINS:
                pm.register(importlib.import_module(modname), name=modname)
            allowed = _allow_list()
            for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
                dist = ep.dist.name if ep.dist is not None else ep.name
                if allowed is not None and dist not in allowed and ep.name not in allowed:
                    log.debug("plug-in %s (%s) skipped: not in %s", ep.name, dist, ALLOW_LIST_ENV)
                    continue
                if pm.has_plugin(ep.name):
                    continue
                try:
                    pm.register(ep.load(), name=ep.name)
                except Exception as exc:  # a broken plug-in must not break the library
                    log.warning("could not load talkinghead plug-in %s (%s): %s", ep.name, dist, exc)
                    continue
                _dists[_package_of(pm.get_plugin(ep.name))] = dist
            pm.check_pending()
            _pm = pm
        return _pm


def get_registry() -> Registry:
    """The backend registry, built from every plug-in's ``register_backends`` hook (once)."""
    global _registry
    pm = get_plugin_manager()
    with _lock:
        if _registry is None:
            registry = Registry()
            classes: list[type] = []
            pm.hook.register_backends(register=classes.append)
            # pluggy calls the newest plug-in first; registering in reverse lets a plug-in added
            # later (an entry point, an app's own) replace a built-in of the same name.
            for cls in reversed(classes):
                package = _package_of(cls)
                registry.register(cls, _dists.get(package, package))
            _registry = registry
        return _registry


def add_plugin(plugin: object, name: str | None = None) -> None:
    """Register a plug-in object or module at run time (an app's own backends, test fakes).

    It must implement ``register_backends``; the registry is rebuilt on next use.
    """
    global _registry
    pm = get_plugin_manager()
    with _lock:
        if not pm.is_registered(plugin):
            pm.register(plugin, name=name)
            pm.check_pending()
        _registry = None


def reset() -> None:
    """Forget the plug-in manager and registry so the next use rediscovers plug-ins (for tests)."""
    global _pm, _registry
    with _lock:
        _pm = None
        _registry = None
        _dists.clear()


def create_backend(stage: str, name: str, **config: Any) -> Any:
    """Construct a registered backend: ``create_backend("tts", "piper", length_scale=1.1)``."""
    return get_registry().create(stage, name, config)


def voice_suggestions(scripts: Iterable[str]) -> list[str]:
    """How the installed TTS backends could speak text in these writing systems (ISO 15924 codes).

    Each TTS backend class may declare ``suggest_voices(script) -> list[str]`` (a classmethod);
    the hints of every installed backend are collected, for the error that refuses text the
    selected voice cannot read.
    """
    hints: list[str] = []
    for info in get_registry().all():
        suggest = getattr(info.cls, "suggest_voices", None) if info.stage == "tts" else None
        if suggest is None:
            continue
        for script in scripts:
            try:
                found = list(suggest(script))
            except Exception as exc:  # a plug-in's hint must never hide the real error
                log.debug("%s.suggest_voices(%r) failed: %s", info.cls.__qualname__, script, exc)
                continue
            hints.extend(h for h in found if h not in hints)
    return hints


def check_voice_reads(tts: Any, text: str, voice: VoiceProfile | None) -> None:
    """Refuse text the TTS voice cannot read (it declares ``scripts(voice)``), naming what can."""
    scripts = getattr(tts, "scripts", None)
    if not callable(scripts):
        return
    label = (voice.voice if voice is not None and voice.voice else None) or getattr(tts, "voice", None)
    if not label:
        names = list(tts.voices())
        label = names[0] if len(names) == 1 else ""
    who = f"the {tts.name} voice {label}".rstrip()
    try:
        check_scripts(text, scripts(voice), voice=who)
    except UnspeakableTextError as exc:
        hints = voice_suggestions(exc.scripts)
        hint = "; or ".join(hints) if hints else "choose a TTS voice for that language (`talkinghead plugins` lists the TTS backends)"
        raise UnspeakableTextError(f"{exc}. To speak it use {hint}", exc.scripts) from None


def default_animator() -> str:
    """``sadtalker`` when it is installed and its weights are cached, else ``viseme``."""
    registry = get_registry()
    if "sadtalker" in registry.names("animator"):
        cls = registry.get("animator", "sadtalker").cls
        available = getattr(cls, "weights_available", None)
        try:
            if available is not None and available():
                log.info("animator: sadtalker (its weights are in the cache)")
                return "sadtalker"
        except Exception as exc:  # a broken check must not stop the default path
            log.debug("sadtalker weights check failed: %s", exc)
        log.info("animator: viseme (sadtalker weights not in the cache; `talkinghead weights download sadtalker`)")
    else:
        log.info("animator: viseme (the embedded default)")
    return "viseme"
