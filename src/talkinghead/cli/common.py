"""What every command shares: typed ``--set`` parsing, the progress bar, the render flags and
building an :class:`~talkinghead.Avatar` from parsed flags.

Flags are parsed here into typed values; nothing below the ``cli`` package sees argparse.
"""

from __future__ import annotations

import argparse
import inspect
import json
import logging
import sys
import time
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from ..errors import ConfigError, TalkingHeadError

log = logging.getLogger("talkinghead")

STAGE_FLAGS = ("tts", "animator", "enhancer", "writer", "asr", "llm")


# -- typed --set parsing --------------------------------------------------------------------------
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
        raise ConfigError(f"option {name}: {raw!r} is not a valid {getattr(annotation, '__name__', annotation)}") from None
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def typed_config(stage: str, name: str, raw: dict[str, str]) -> dict[str, Any]:
    """Turn raw ``--set`` strings into values of the types the backend's constructor declares."""
    from ..plugins import get_registry

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


# -- progress --------------------------------------------------------------------------------------
class ProgressBar:
    """A one-line progress bar on a terminal (nothing when the stream is not a TTY).

    ``units`` names what a stage counts (default: frames).
    """

    def __init__(self, stream: TextIO, enabled: bool = True, units: dict[str, str] | None = None) -> None:
        self.stream = stream
        self.units = dict(units or {})
        self.enabled = enabled and hasattr(stream, "isatty") and stream.isatty()
        self.t0 = time.perf_counter()
        self._last = ""

    def __call__(self, stage: str, done: int, total: int) -> None:
        if not self.enabled or total <= 0:
            return
        width = 30
        filled = int(width * done / total)
        rate = done / max(time.perf_counter() - self.t0, 1e-6)
        unit = self.units.get(stage, "frames")
        per = "fps" if unit == "frames" else "/s"
        line = f"\r{stage:>8} [{'#' * filled}{'.' * (width - filled)}] {done}/{total} {unit} {rate:5.1f} {per}"
        if line != self._last:
            self.stream.write(line)
            self.stream.flush()
            self._last = line

    def close(self) -> None:
        if self.enabled and self._last:
            self.stream.write("\n")
            self.stream.flush()


# -- avatars from flags --------------------------------------------------------------------------------------
def build_avatar(args: argparse.Namespace, progress: ProgressBar, **extra: Any):
    from ..avatar import Avatar, _default_animator

    settings = parse_settings(args.set or [])
    named = [stage for stage in STAGE_FLAGS if getattr(args, stage, None)]
    if settings.get(""):
        if len(named) != 1:
            raise ConfigError(
                "--set key=value without a stage is ambiguous here; write --set STAGE.key=value "
                "(e.g. --set tts.length_scale=1.2)"
            )
        settings.setdefault(named[0], {}).update(settings.pop(""))
    defaults = {"tts": "piper", "writer": "mp4"}
    specs: dict[str, Any] = {}
    for stage in STAGE_FLAGS:
        name = getattr(args, stage, None)
        raw = settings.get(stage, {})
        if name is None and raw:
            name = defaults.get(stage) or (_default_animator() if stage == "animator" else None)
            if name is None:
                raise ConfigError(f"--set {stage}.…: give --{stage} NAME to choose that stage's backend")
        if name is not None:
            specs[stage] = (name, typed_config(stage, name, raw))
    kwargs: dict[str, Any] = {"fps": args.fps, "progress": progress, **extra}
    if getattr(args, "multiple_faces", None):
        kwargs["multiple_faces"] = args.multiple_faces
    return Avatar(args.image, **specs, **kwargs)


def add_render_flags(p: argparse.ArgumentParser, output_required: bool = True) -> None:
    """The flags of every command that renders a video (image, output, fps, stages, --set)."""
    p.add_argument("--image", "-i", required=True, help="portrait image (JPEG/PNG)")
    if output_required:
        p.add_argument("--output", "-o", required=True, help="output video file (.mp4)")
    else:
        p.add_argument("--output", "-o", help="output video file (default: a new file in --output-dir)")
        p.add_argument("--output-dir", help="folder for videos without an explicit --output")
    p.add_argument("--fps", type=float, default=20.0, help="frames per second (default 20)")
    for stage in ("tts", "animator", "enhancer", "writer"):
        p.add_argument(f"--{stage}", metavar="NAME", help=f"{stage} backend (see `talkinghead plugins`)")
    p.add_argument(
        "--set",
        action="append",
        metavar="[STAGE.]KEY=VALUE",
        help="backend option, repeatable (e.g. --set tts.length_scale=1.2 --set animator.seed=3)",
    )
    p.add_argument("--multiple-faces", choices=("largest", "refuse"), help="what to do with several faces")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
