"""What every command shares: typed ``--set`` parsing (from :mod:`talkinghead.options`), the progress
bar, the render flags and building an :class:`~talkinghead.Avatar` from parsed flags.

Flags are parsed here into typed values; nothing below the ``cli`` package sees argparse.
"""

from __future__ import annotations

import argparse
import io
import logging
import time
from typing import Any, TextIO

from ..errors import ConfigError
from ..options import STAGE_FLAGS, convert_value, parse_settings, typed_config  # noqa: F401 (re-exported)

log = logging.getLogger("talkinghead")


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
    from ..avatar import Avatar
    from ..plugins import default_animator

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
            name = defaults.get(stage) or (default_animator() if stage == "animator" else None)
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
        p.add_argument("--output", "-o", required=True, help="output video file (.mp4), or - to stream fragmented MP4 to stdout")
    else:
        p.add_argument(
            "--output", "-o", help="output video file (default: a new file in --output-dir), or - to stream to stdout"
        )
        p.add_argument("--output-dir", help="folder for videos without an explicit --output")
    p.add_argument("--fps", type=float, default=None, help="frames per second (default 20; 25 with -o -)")
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


# -- streaming to stdout (-o -) ------------------------------------------------------------------
def binary_stream(out: TextIO) -> Any:
    """The binary side of ``out`` (``sys.stdout.buffer``), or ``out`` itself when it is binary."""
    buffer = getattr(out, "buffer", None)
    if buffer is not None:
        return buffer
    if isinstance(out, (io.RawIOBase, io.BufferedIOBase)):
        return out
    raise ConfigError("-o - needs a binary standard output; redirect it to a file or a pipe")


def stream_video(chunks: Any, out: TextIO, err: TextIO) -> int:
    """Write ``chunks`` as fragmented MP4 to ``out``'s binary stream as they are rendered; report on ``err``."""
    from ..streaming.fmp4 import write_fmp4

    t0 = time.perf_counter()
    stats = write_fmp4(chunks, binary_stream(out))
    err.write(
        f"streamed {stats.frames} frames at {float(stats.fps):g} fps ({stats.width}x{stats.height}, "
        f"{stats.frames / float(stats.fps):.2f} s, {stats.bytes} bytes) in {time.perf_counter() - t0:.1f} s\n"
    )
    return 0
