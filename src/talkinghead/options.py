"""Typed backend options from text: ``--set [stage.]key=value`` strings, CSV cells and the like.

The one home of turning strings into the types a backend's constructor declares; the command line and
batch job files both use it. Nothing here sees argparse.
"""

from __future__ import annotations

import inspect
import json
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import ConfigError

__all__ = ["STAGE_FLAGS", "convert_value", "parse_settings", "typed_config"]

STAGE_FLAGS = ("tts", "animator", "enhancer", "writer", "asr", "llm")


def parse_settings(items: Sequence[str]) -> dict[str, dict[str, str]]:
    """Parse repeated ``--set [stage.]key=value`` into ``{stage or "": {key: raw value}}``."""
    out: dict[str, dict[str, str]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set takes key=value (or stage.key=value), got {item!r}")
        stage, dot, name = key.strip().rpartition(".")
        if dot and stage not in STAGE_FLAGS:
            raise ConfigError(f"--set {item!r}: unknown stage {stage!r}; use one of {', '.join(STAGE_FLAGS)}")
        out.setdefault(stage, {})[name] = value
    return out


def convert_value(raw: str, annotation: Any, name: str) -> Any:
    """Convert a command-line string to the type a backend option is annotated with."""
    if isinstance(annotation, str):
        annotation = {"int": int, "float": float, "bool": bool, "str": str}.get(annotation.split("|")[0].strip(), Any)
    origin = typing.get_origin(annotation)
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if raw.lower() in ("none", "null") and (type(None) in typing.get_args(annotation) or annotation is Any):
        return None
    if origin in (typing.Union, getattr(types, "UnionType", typing.Union)) and args:
        for candidate in args:
            try:
                return convert_value(raw, candidate, name)
            except ConfigError:
                continue
        raise ConfigError(f"option {name}: cannot read {raw!r} as {annotation}")
    if origin is typing.Literal:
        if raw in [str(a) for a in typing.get_args(annotation)]:
            choice = next(a for a in typing.get_args(annotation) if str(a) == raw)
            return choice
        raise ConfigError(f"option {name} must be one of {typing.get_args(annotation)}, got {raw!r}")
    try:
        if annotation is bool:
            low = raw.lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if annotation in (int, float, str, Path):
            return annotation(raw)
        if origin in (list, tuple, Sequence) or annotation in (list, tuple):
            value = json.loads(raw) if raw.strip().startswith("[") else [v for v in raw.split(",") if v]
            inner = typing.get_args(annotation)[:1]
            if inner and inner[0] in (int, float, str):
                value = [inner[0](v) for v in value]
            return tuple(value) if origin is tuple or annotation is tuple else list(value)
    except (ValueError, json.JSONDecodeError):
        raise ConfigError(
            f"option {name}: {raw!r} is not a valid {getattr(annotation, '__name__', annotation)}"
        ) from None
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def typed_config(stage: str, name: str, raw: dict[str, str]) -> dict[str, Any]:
    """Turn raw ``--set`` strings into values of the types the backend's constructor declares."""
    from .plugins import get_registry

    cls = get_registry().get(stage, name).cls
    try:
        hints = typing.get_type_hints(cls.__init__)
    except Exception:
        hints = {}
    params = inspect.signature(cls).parameters
    out = {}
    for key, value in raw.items():
        if key not in params:
            options = ", ".join(p for p in params if p != "self") or "none"
            raise ConfigError(f"{stage} backend {name!r} has no option {key!r}; options: {options}")
        out[key] = convert_value(value, hints.get(key, Any), f"{stage}.{key}")
    return out
