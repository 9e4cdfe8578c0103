"""The ``talkinghead weights list|download|verify|path`` commands.

Each ``cmd_*`` function takes typed arguments, writes to the given text stream and returns an exit
code (0 success, 1 a file is missing/corrupt or a download failed, 2 an unknown name);
:func:`add_parsers` wires them to argparse.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Sequence
from typing import TextIO

from ..errors import ConfigError, WeightsMissingError
from ..weights.catalog import WeightFile
from ..weights.manager import TRUST_FLAG, WeightsManager

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _manager(cache_dir: str | os.PathLike[str] | None, manager: WeightsManager | None) -> WeightsManager:
    return manager if manager is not None else WeightsManager(cache_dir)


def _mb(n: int | None) -> str:
    return "?" if n is None else f"{n / 1e6:.1f} MB"


def cmd_list(
    out: TextIO,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    manager: WeightsManager | None = None,
) -> int:
    """Print every known file (by group): size, whether it is in the cache, licence, what it is
    for, its SHA-256 and which backends need it; then the bundles."""
    wm = _manager(cache_dir, manager)
    out.write(f"weights directory: {wm.cache_dir}\n")
    for group, files in wm.registry.groups().items():
        out.write(f"\n[{group}]\n")
        for wf in files:
            path = wm.path(wf)
            if path.is_file():
                here = "present" if wf.size is None or path.stat().st_size == wf.size else "wrong size"
            elif path.with_name(path.name + ".part").is_file():
                here = "partial"
            else:
                here = "missing"
            out.write(f"  {wf.name:<30} {_mb(wf.size):>10}  {here:<10} {wf.licence}\n")
            if wf.description:
                out.write(f"  {'':<30} {wf.description}\n")
            sha = wf.sha256 or wm.checksums.get(wf.name).get("sha256")
            if wf.sha256:
                out.write(f"  {'':<30} sha256 {sha}\n")
            elif sha:
                out.write(f"  {'':<30} sha256 {sha} (no published hash; recorded on first use)\n")
            else:
                out.write(f"  {'':<30} sha256 unknown (no published hash; downloading needs {TRUST_FLAG})\n")
            users = wm.registry.needed_by.get(wf.name)
            out.write(f"  {'':<30} needed by {', '.join(users) if users else '-'}\n")
    if wm.registry.bundles:
        out.write("\nbundles:\n")
        for b in wm.registry.bundles.values():
            out.write(f"  {b.name:<30} {', '.join(b.members)}\n")
    return EXIT_OK


class _Bar:
    """A one-line progress bar on a terminal; on other streams one line per finished file."""

    def __init__(self, out: TextIO, width: int = 30):
        self.out, self.width = out, width
        self.tty = bool(getattr(out, "isatty", lambda: False)())
        self._last = 0.0
        self._name: str | None = None

    def __call__(self, wf: WeightFile, done: int, total: int | None) -> None:
        if wf.name != self._name:
            self._name = wf.name
            if not self.tty:
                self.out.write(f"downloading {wf.name} ({_mb(total)})\n")
        if not self.tty:
            return
        now = time.monotonic()
        if total is not None and done < total and now - self._last < 0.1:
            return
        self._last = now
        if total:
            frac = min(done / total, 1.0)
            fill = int(frac * self.width)
            bar = "#" * fill + " " * (self.width - fill)
            self.out.write(f"\r{wf.name:<28} [{bar}] {frac:6.1%} {_mb(done)}/{_mb(total)}")
        else:
            self.out.write(f"\r{wf.name:<28} {_mb(done)}")
        if total is not None and done >= total:
            self.out.write("\n")
        self.out.flush()


def cmd_download(
    names: Sequence[str],
    out: TextIO,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    force: bool = False,
    progress: bool = True,
    trust_unverified: bool = False,
    manager: WeightsManager | None = None,
) -> int:
    """Download files, groups or bundles (``"all"`` if ``names`` is empty), with a progress bar.

    Files without a published SHA-256 are refused unless ``trust_unverified`` (``--trust-unverified``)
    accepts trust on first use for this call."""
    wm = _manager(cache_dir, manager)
    trusted = wm.trust_unverified
    wm.trust_unverified = trusted or trust_unverified
    try:
        paths = wm.download(list(names) or ["all"], force=force, progress=_Bar(out) if progress else None)
    except ConfigError as exc:
        out.write(f"error: {exc}\n")
        return EXIT_USAGE
    except WeightsMissingError as exc:
        out.write(f"error: {exc}\n")
        return EXIT_FAILED
    finally:
        wm.trust_unverified = trusted
    for name, path in paths.items():
        out.write(f"ok  {name:<30} {path}\n")
    return EXIT_OK


def cmd_verify(
    names: Sequence[str],
    out: TextIO,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    manager: WeightsManager | None = None,
) -> int:
    """Recompute hashes of files (``"all"`` if ``names`` is empty) and print ok/missing/corrupt.

    Returns 1 if a named file is missing or corrupt; with no names, missing files are listed but
    only corrupt ones fail (an empty cache is not an error)."""
    wm = _manager(cache_dir, manager)
    try:
        statuses = wm.verify(list(names) or ["all"])
    except ConfigError as exc:
        out.write(f"error: {exc}\n")
        return EXIT_USAGE
    for st in statuses:
        out.write(f"{st.state:<8} {st.file.name:<30} {st.path}  ({st.detail})\n")
    failing = [st for st in statuses if st.state == "corrupt" or (names and st.state == "missing")]
    return EXIT_FAILED if failing else EXIT_OK


def cmd_path(
    names: Sequence[str],
    out: TextIO,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    manager: WeightsManager | None = None,
) -> int:
    """Print where each file is or should be placed; with no names, the weights directory."""
    wm = _manager(cache_dir, manager)
    if not names:
        out.write(f"{wm.cache_dir}\n")
        return EXIT_OK
    try:
        files = wm.registry.resolve(list(names))
    except ConfigError as exc:
        out.write(f"error: {exc}\n")
        return EXIT_USAGE
    for wf in files:
        out.write(f"{wm.path(wf)}\n")
    return EXIT_OK


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("weights", help="list, download, verify or locate model weights")
    p.add_argument("action", choices=("list", "download", "verify", "path"))
    p.add_argument("names", nargs="*", help="files, groups or bundles (e.g. sadtalker, gfpgan); default: all")
    p.add_argument("--cache-dir", help="weights directory (default: the user cache, or $TALKINGHEAD_CACHE/weights)")
    p.add_argument("--force", action="store_true", help="download again even if present")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        TRUST_FLAG,
        action="store_true",
        help="also download files that have no published SHA-256 (trust on first use: the hash of this "
        "download is recorded and enforced afterwards)",
    )
    p.set_defaults(func=cmd_weights)


def cmd_weights(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if args.action == "list":
        return cmd_list(out, cache_dir=args.cache_dir)
    if args.action == "download":
        return cmd_download(
            args.names,
            out,
            cache_dir=args.cache_dir,
            force=args.force,
            progress=not args.no_progress,
            trust_unverified=args.trust_unverified,
        )
    if args.action == "verify":
        return cmd_verify(args.names, out, cache_dir=args.cache_dir)
    return cmd_path(args.names, out, cache_dir=args.cache_dir)
