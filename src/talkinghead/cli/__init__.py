"""The ``talkinghead`` command line: one module per group of commands.

``common`` holds what every command shares (typed ``--set`` parsing, the progress bar, the render
flags); ``render`` (say, speak), ``converse`` (ask, chat, voices), ``weights`` and ``plugins``
each add their sub-commands with ``add_parsers``. Nothing below this package sees argparse.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib import import_module
from typing import TextIO

from ..errors import TalkingHeadError
from .common import convert_value, parse_settings, typed_config

__all__ = ["main", "build_parser", "convert_value", "parse_settings", "typed_config"]

log = logging.getLogger("talkinghead")

#: Modules that add sub-commands, in the order ``--help`` lists them.
COMMAND_MODULES: tuple[str, ...] = ("render", "batch", "eval", "plugins", "converse", "weights", "serve", "bank",
                                     "export", "agents")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="talkinghead", description="Portrait + text or audio -> lip-synced talking-head video."
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        import_module(f"{__name__}.{name}").add_parsers(sub)
    return parser


class Terminated(KeyboardInterrupt):
    """Raised in the main thread when the process gets SIGTERM or SIGHUP while a command runs.

    It unwinds the command like Ctrl-C does (the writer removes its unfinished temporary file, the
    old output stays), and :func:`main` exits with ``128 + signal number``.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


#: Signals that stop a command the way Ctrl-C does: ``timeout``, docker, systemd send SIGTERM,
#: a closed terminal SIGHUP.
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


@contextmanager
def _stop_signals_raise() -> Iterator[None]:
    """While the block runs, SIGTERM/SIGHUP raise :class:`Terminated`; the old handlers are restored after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise Terminated(signum)

    previous = {}
    try:
        for sig in STOP_SIGNALS:
            previous[sig] = signal.signal(sig, handler)
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 1 error a user can fix, 2 usage, 3 internal,
    130 interrupted by Ctrl-C, 143 stopped by SIGTERM, 129 by SIGHUP)."""
    out = out or sys.stdout
    err = err or sys.stderr
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from .. import __version__

        out.write(f"talkinghead {__version__}\n")
        return 0
    if not args.command:
        parser.print_help(out)
        return 2
    level = logging.WARNING if args.verbose == 0 else logging.INFO if args.verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=err)
    try:
        with _stop_signals_raise():
            return int(args.func(args, out, err) or 0)
    except Terminated as exc:
        name = signal.Signals(exc.signum).name
        err.write(f"stopped by {name} before the command finished (no unfinished video is left behind)\n")
        return 128 + exc.signum
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
