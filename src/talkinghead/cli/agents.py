"""``talkinghead livekit-worker``: the avatar as a separate LiveKit avatar worker."""

from __future__ import annotations

import argparse
import asyncio
import os
from typing import TextIO

from ..errors import ConfigError
from .common import ProgressBar, build_avatar


def cmd_livekit_worker(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    url = args.url or os.environ.get("LIVEKIT_URL")
    token = args.token or os.environ.get("LIVEKIT_TOKEN")
    if not url or not token:
        raise ConfigError(
            "livekit-worker needs the server URL and a room token: --url/--token or LIVEKIT_URL/LIVEKIT_TOKEN "
            "(the agent's RemoteAvatarSession makes the token)"
        )
    from ..integrations.livekit import connect_and_run  # raises MissingDependencyError naming the extra

    progress = ProgressBar(err, enabled=False)
    avatar = build_avatar(args, progress, tts=None, writer=None).preload()
    options = {"sample_rate": args.sample_rate, "video_format": args.video_format}
    generator = asyncio.run(connect_and_run(url, token, avatar, **options))
    err.write(f"avatar worker stopped after {len(generator.utterances)} utterance(s)\n")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "livekit-worker",
        help="run the avatar as a separate LiveKit avatar worker (needs talkinghead[livekit])",
        description="Join a LiveKit room as the agent's avatar: receive its speech over data streams, publish "
        "lip-synced video and the audio. The agent side is talkinghead.integrations.livekit.RemoteAvatarSession.",
    )
    p.add_argument("--image", "-i", required=True, help="portrait image (JPEG/PNG)")
    p.add_argument("--url", help="LiveKit server URL (default: $LIVEKIT_URL)")
    p.add_argument("--token", help="room token for the avatar (default: $LIVEKIT_TOKEN; prefer the variable)")
    p.add_argument("--fps", type=float, default=None, help="frames per second (default 25)")
    p.add_argument("--sample-rate", type=int, default=None, help="audio rate published (default 24000)")
    p.add_argument("--video-format", choices=("rgba", "rgb24"), default="rgba", help="video buffer type")
    for stage in ("animator", "enhancer"):
        p.add_argument(f"--{stage}", metavar="NAME", help=f"{stage} backend (see `talkinghead plugins`)")
    p.add_argument("--set", action="append", metavar="STAGE.KEY=VALUE", help="backend option, repeatable")
    p.add_argument("--multiple-faces", choices=("largest", "refuse"), help="what to do with several faces")
    p.set_defaults(func=cmd_livekit_worker)
