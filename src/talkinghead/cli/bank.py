"""``talkinghead bank build`` and ``talkinghead bank info``: per-portrait frame banks (avatar packs)."""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path
from typing import TextIO

from ..errors import ConfigError, OutputError
from .common import ProgressBar, parse_settings, typed_config


def cmd_build(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from ..avatar import Avatar
    from ..backends.bank import BankAnimator
    from ..backends.bank.pack import PACK_SUFFIX, read_pack

    output = _check_output(args.output, PACK_SUFFIX) if args.output else None
    settings = parse_settings(args.set or [])
    if settings.get(""):
        settings.setdefault("animator", {}).update(settings.pop(""))
    unknown = sorted(set(settings) - {"animator", "tts"})
    if unknown:
        raise ConfigError(f"--set {unknown[0]}.…: `bank build` takes options of the animator and the tts only")
    source_config = typed_config("animator", args.animator, settings.get("animator", {}))
    tts_config = typed_config("tts", args.tts, settings.get("tts", {}))
    bank = BankAnimator(source=args.animator, source_config=source_config, k=args.k, tts=args.tts,
                        tts_config=tts_config, sentences=args.sentences, bank_dir=args.bank_dir, seed=args.seed,
                        build="never")
    kwargs = {"multiple_faces": args.multiple_faces} if args.multiple_faces else {}
    avatar = Avatar(args.image, tts=None, animator=bank, writer=None, **kwargs)  # the portrait as every Avatar sees it
    progress = ProgressBar(err, enabled=not args.quiet, units={"speech": "sentences", "render": "frames"})
    t0 = time.perf_counter()
    try:
        path = bank.build(avatar.portrait, multiple_faces=avatar.multiple_faces, force=args.force,
                          progress=progress)
    finally:
        progress.close()
    pack = read_pack(path)
    if output is not None:
        _copy_atomic(path, output)
    m = pack.manifest
    size = f"{pack.frames.shape[2]}x{pack.frames.shape[1]}"
    out.write(f"{output or path}  ({pack.k} frames of {m.get('source')} at {size}, "
              f"{m.get('speech', {}).get('seconds', 0):.0f} s of speech, built in "
              f"{float(m.get('build_seconds', time.perf_counter() - t0)):.1f} s)\n")
    return 0


def cmd_info(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from ..backends.bank.pack import read_pack

    pack = read_pack(args.pack)
    m = pack.manifest
    speech = m.get("speech", {})
    lines = [
        f"pack        {args.pack}",
        f"source      {m.get('source')}  {m.get('fingerprint', {})}",
        f"portrait    {str(m.get('portrait', ''))[:12]}",
        f"states      {pack.k} x {pack.states.shape[1]} parameters",
        f"frames      {pack.frames.shape[2]}x{pack.frames.shape[1]} (region), {pack.frames.nbytes / 1e6:.1f} MB",
        f"speech      {speech.get('sentences')} sentences, {speech.get('seconds')} s ({speech.get('set')})",
        f"built       {m.get('created')} in {m.get('build_seconds')} s",
    ]
    out.write("\n".join(lines) + "\n")
    return 0


def _check_output(path: str, suffix: str) -> Path:
    p = Path(path)
    if p.suffix != suffix:
        raise OutputError(f"avatar packs end in {suffix}; got {p.name!r} (try {p.with_suffix(suffix).name})")
    if p.is_dir():
        raise OutputError(f"output path {p} is a directory; give a file name such as {p / ('avatar' + suffix)}")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"the folder {parent} does not exist; create it first or choose another output path")
    if not os.access(parent, os.W_OK):
        raise OutputError(f"cannot write to the folder {parent} (permission denied); choose another output path")
    return p


def _copy_atomic(src: Path, dst: Path) -> None:
    from ..output import atomic_file

    with atomic_file(dst) as tmp:
        shutil.copyfile(src, tmp)


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bank", help="build per-portrait frame banks (avatar packs) for the real-time bank animator")
    bsub = p.add_subparsers(dest="bank_command", metavar="BANK_COMMAND", required=True)

    b = bsub.add_parser("build", help="render a portrait's bank once (resumes an interrupted build)")
    b.add_argument("--image", "-i", required=True, help="portrait image (JPEG/PNG)")
    b.add_argument("--animator", "-a", default="sadtalker", help="source animator to bank (default sadtalker)")
    b.add_argument("-k", type=int, default=64, help="number of bank frames (default 64)")
    b.add_argument("--tts", default="piper", help="TTS that speaks the speech set (default piper)")
    b.add_argument("--sentences", type=int, help="use only the first N sentences of the speech set")
    b.add_argument("--seed", type=int, default=0, help="seed of the choice of states")
    b.add_argument("--bank-dir", help="cache folder (default: banks/ in the talkinghead cache)")
    b.add_argument("--output", "-o", help="also write the pack to this .thbank file")
    b.add_argument("--force", action="store_true", help="rebuild even if the bank is cached")
    b.add_argument("--set", action="append", metavar="[animator.|tts.]KEY=VALUE",
                   help="source animator or TTS option, repeatable (e.g. --set animator.size=256)")
    b.add_argument("--multiple-faces", choices=("largest", "refuse"), help="what to do with several faces")
    b.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    b.set_defaults(func=cmd_build)

    i = bsub.add_parser("info", help="describe an avatar pack")
    i.add_argument("pack", help="a .thbank file")
    i.set_defaults(func=cmd_info)
