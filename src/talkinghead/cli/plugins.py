"""``talkinghead plugins``: every installed backend with its stage, package and capabilities."""

from __future__ import annotations

import argparse
import json
from typing import TextIO


def cmd_plugins(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from ..plugins import get_registry

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


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plugins", help="list the installed backends")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_plugins)
