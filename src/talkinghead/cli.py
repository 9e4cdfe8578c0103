"""The ``talkinghead`` command line.

Flags are parsed here into typed values; nothing below this module sees argparse.
"""

from __future__ import annotations

import argparse
import inspect
import json
import logging
import sys
import time
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from .errors import ConfigError, TalkingHeadError

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
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", typing.Union)) and args:
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


# -- progress --------------------------------------------------------------------------------------
class ProgressBar:
    """A one-line progress bar on a terminal (nothing when the stream is not a TTY)."""

    def __init__(self, stream: TextIO, enabled: bool = True) -> None:
        self.stream = stream
        self.enabled = enabled and hasattr(stream, "isatty") and stream.isatty()
        self.t0 = time.perf_counter()
        self._last = ""

    def __call__(self, stage: str, done: int, total: int) -> None:
        if not self.enabled or total <= 0:
            return
        width = 30
        filled = int(width * done / total)
        rate = done / max(time.perf_counter() - self.t0, 1e-6)
        line = f"\r{stage:>8} [{'#' * filled}{'.' * (width - filled)}] {done}/{total} frames {rate:5.1f} fps"
        if line != self._last:
            self.stream.write(line)
            self.stream.flush()
            self._last = line

    def close(self) -> None:
        if self.enabled and self._last:
            self.stream.write("\n")
            self.stream.flush()


# -- commands --------------------------------------------------------------------------------------
def _build_avatar(args: argparse.Namespace, progress: ProgressBar, **extra: Any):
    from .avatar import Avatar, _default_animator

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


def cmd_say(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    progress = ProgressBar(err, enabled=not args.quiet)
    avatar = _build_avatar(args, progress)
    t0 = time.perf_counter()
    try:
        video = avatar.say(args.text, args.output) if args.command == "say" else avatar.speak(args.audio, args.output)
    finally:
        progress.close()
    out.write(
        f"{video.path}  ({video.width}x{video.height}, {video.n_frames} frames at {video.fps:g} fps, "
        f"{video.duration:.2f} s, made in {time.perf_counter() - t0:.1f} s)\n"
    )
    return 0


def cmd_plugins(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from .plugins import get_registry

    rows = [(b.stage, b.name, b.plugin, ",".join(sorted(b.capabilities)) or "-", b.description) for b in get_registry().all()]
    if args.json:
        keys = ("stage", "name", "plugin", "capabilities", "description")
        out.write(json.dumps([dict(zip(keys, r)) for r in rows], indent=2) + "\n")
        return 0
    headers = ("STAGE", "NAME", "PACKAGE", "CAPABILITIES", "DESCRIPTION")
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]
    for row in (headers, *rows):
        out.write("  ".join(str(c).ljust(w) for c, w in zip(row[:-1], widths[:-1])) + "  " + row[-1] + "\n")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="talkinghead", description="Portrait + text or audio -> lip-synced talking-head video."
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def render_flags(p: argparse.ArgumentParser, output_required: bool = True) -> None:
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

    p = sub.add_parser("say", help="make a video of the portrait saying a text")
    render_flags(p)
    p.add_argument("--text", "-t", required=True, help="what to say")
    p.set_defaults(func=cmd_say)

    p = sub.add_parser("speak", help="make a video of the portrait speaking an audio file")
    render_flags(p)
    p.add_argument("--audio", "-a", required=True, help="speech audio (WAV, FLAC, OGG, MP3)")
    p.set_defaults(func=cmd_say)

    p = sub.add_parser("plugins", help="list the installed backends")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_plugins)

    _add_conversation(sub, render_flags)
    _add_weights(sub)
    return parser


def _add_conversation(sub, render_flags) -> None:
    def convo_flags(p: argparse.ArgumentParser) -> None:
        p.add_argument("--asr", metavar="NAME", default="faster-whisper", help="ASR backend (default faster-whisper)")
        p.add_argument("--llm", metavar="NAME", default="openai", help="LLM backend (default openai; --set llm.base_url=...)")
        p.add_argument("--system-prompt", help="the persona / system prompt")
        p.add_argument("--memory", type=int, default=2, help="previous exchanges sent to the LLM (default 2)")
        p.add_argument("--json", action="store_true", help="one JSON object per reply")

    p = sub.add_parser("ask", help="answer one question (text or speech) with a video")
    render_flags(p, output_required=False)
    convo_flags(p)
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--question", "-Q", help="the question as text")
    group.add_argument("--audio", "-a", help="the question as speech (WAV, FLAC, OGG, MP3)")
    p.add_argument("--language", help="language of the spoken question (default: detect)")
    p.set_defaults(func=cmd_ask)

    p = sub.add_parser("chat", help="interactive conversation: a question per line, a video per answer")
    render_flags(p, output_required=False)
    convo_flags(p)
    p.set_defaults(func=cmd_chat)

    p = sub.add_parser("voices", help="list the voices of a TTS backend")
    p.add_argument("--tts", required=True, metavar="NAME")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="backend option, repeatable")
    p.set_defaults(func=cmd_voices)


def _conversation_avatar(args: argparse.Namespace, progress: ProgressBar):
    extra: dict[str, Any] = {"memory": args.memory}
    if args.system_prompt:
        extra["system_prompt"] = args.system_prompt
    if getattr(args, "output_dir", None):
        extra["output_dir"] = args.output_dir
    return _build_avatar(args, progress, **extra)


def cmd_ask(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from .chat import run_ask

    progress = ProgressBar(err, enabled=not args.quiet)
    if args.question is not None:
        args.asr = None  # a typed question needs no speech recognition
    try:
        avatar = _conversation_avatar(args, progress)
        return run_ask(
            question=args.question, audio=args.audio, output=args.output, avatar=avatar,
            language=args.language, json_output=args.json, stdout=out, stderr=err,
        )
    finally:
        progress.close()


def cmd_chat(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from .chat import run_chat

    avatar = _conversation_avatar(args, ProgressBar(err, enabled=False))
    interactive = sys.stdin.isatty()
    if interactive:
        err.write("talkinghead chat: type a question (or the path of a recording); /reset, /quit\n")
    return run_chat(avatar, sys.stdin, out, error_stream=err, json_output=args.json, prompt="you> " if interactive else None)


def cmd_voices(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from .chat import list_voices

    raw = parse_settings(args.set or [])
    config = typed_config("tts", args.tts, {**raw.get("", {}), **raw.get("tts", {})})
    return list_voices(args.tts, config, stdout=out, stderr=err)


def _add_weights(sub) -> None:
    p = sub.add_parser("weights", help="list, download, verify or locate model weights")
    p.add_argument("action", choices=("list", "download", "verify", "path"))
    p.add_argument("names", nargs="*", help="files, groups or bundles (e.g. sadtalker, gfpgan); default: all")
    p.add_argument("--cache-dir", help="weights directory (default: the user cache, or $TALKINGHEAD_CACHE/weights)")
    p.add_argument("--force", action="store_true", help="download again even if present")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_weights)


def cmd_weights(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from .weights import commands

    if args.action == "list":
        return commands.cmd_list(out, cache_dir=args.cache_dir)
    if args.action == "download":
        return commands.cmd_download(
            args.names, out, cache_dir=args.cache_dir, force=args.force, progress=not args.no_progress
        )
    if args.action == "verify":
        return commands.cmd_verify(args.names, out, cache_dir=args.cache_dir)
    return commands.cmd_path(args.names, out, cache_dir=args.cache_dir)


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 1 error a user can fix, 2 usage, 3 internal)."""
    out = out or sys.stdout
    err = err or sys.stderr
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from . import __version__

        out.write(f"talkinghead {__version__}\n")
        return 0
    if not args.command:
        parser.print_help(out)
        return 2
    level = logging.WARNING if args.verbose == 0 else logging.INFO if args.verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=err)
    try:
        return int(args.func(args, out, err) or 0)
    except KeyboardInterrupt:
        err.write("interrupted\n")
        return 130
    except BrokenPipeError:  # output piped into `head` and the like
        return 0
    except TalkingHeadError as exc:
        err.write(f"error: {exc}\n")
        return 1
    except Exception as exc:  # a bug: show it briefly, with the traceback at -v
        log.debug("internal error", exc_info=True)
        err.write(f"internal error: {type(exc).__name__}: {exc} (run with -vv for the traceback)\n")
        return 3


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
