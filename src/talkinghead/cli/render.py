"""``talkinghead say`` and ``talkinghead speak``: a video of the portrait saying a text or speaking audio."""

from __future__ import annotations

import argparse
import time
from typing import TextIO

from .common import ProgressBar, add_render_flags, build_avatar, stream_video


def cmd_render(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if args.output == "-":
        return cmd_render_stream(args, out, err)
    progress = ProgressBar(err, enabled=not args.quiet)
    avatar = build_avatar(args, progress)
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


def cmd_render_stream(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """``-o -``: fragmented MP4 on stdout while rendering (``| ffplay -`` plays it as it comes)."""
    avatar = build_avatar(args, ProgressBar(err, enabled=False))
    source = args.text if args.command == "say" else args.audio
    if args.command == "speak":
        from ..io import load_audio

        source = load_audio(source)
    return stream_video(avatar.stream(source, chunk_frames=2), out, err)


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("say", help="make a video of the portrait saying a text")
    add_render_flags(p)
    p.add_argument("--text", "-t", required=True, help="what to say")
    p.set_defaults(func=cmd_render)

    p = sub.add_parser("speak", help="make a video of the portrait speaking an audio file")
    add_render_flags(p)
    p.add_argument("--audio", "-a", required=True, help="speech audio (WAV, FLAC, OGG, MP3)")
    p.set_defaults(func=cmd_render)
