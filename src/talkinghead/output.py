"""Where videos go: checking an output path before any work, and replacing it atomically.

The one home of output-file safety. The :class:`~talkinghead.Avatar` (and through it the CLI) calls
:func:`check_output_path` before anything is synthesised or rendered; every file writer writes
through :func:`atomic_file`:

* :func:`check_output_path` refuses a path that is, or resolves to (through symlinks, ``..`` or a
  hard link), one of the inputs; a path that exists but is not a regular file (a device such as
  ``/dev/full``, a fifo, a socket, a directory); and a file name whose extension the writer does
  not produce (the error lists the ones it does, and names another installed writer that produces
  the asked-for one).
* :func:`atomic_file` gives a writer a temporary file next to the target and renames it over the
  target only when the writer succeeded, so a failure (an exception, Ctrl-C, SIGTERM) never leaves
  a partial video and never destroys the file that was there before. Temporary names carry the
  host and the process id: leftovers of processes that died without cleaning up (SIGKILL, a power
  cut) are removed by the next write to that folder, and only those of dead processes.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import socket
import stat
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import OutputError

__all__ = ["atomic_file", "check_output_path", "clean_stale_temp_files", "temp_name", "writer_suffixes"]

log = logging.getLogger(__name__)

_TEMP_MARK = ".thpart-"
# .<target name>.thpart-<host hash>-<pid>-<random>.<target suffix>
_TEMP_RE = re.compile(r"^\..*\.thpart-(?P<host>[0-9a-f]{8})-(?P<pid>\d+)-[0-9a-f]{8}(?:\.[^.]*)?$")


def writer_suffixes(writer: Any) -> tuple[str, ...]:
    """The file extensions a writer (instance or class) produces, lower case with the dot.

    A writer declares them in its ``suffixes`` class attribute (the first is its default); one
    that declares only ``suffix`` produces that one.
    """
    declared = getattr(writer, "suffixes", None) or (getattr(writer, "suffix", None) or ".mp4",)
    return tuple(s.lower() if s.startswith(".") else "." + s.lower() for s in declared)


def _writers_for(suffix: str) -> list[str]:
    """Names of the installed writers that produce ``suffix``."""
    try:
        from .plugins import get_registry

        registry = get_registry()
        return [n for n in registry.names("writer") if suffix in writer_suffixes(registry.get("writer", n).cls)]
    except Exception as exc:  # a broken registry must not hide the real problem
        log.debug("could not list the installed writers: %s", exc)
        return []


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISFIFO, "a fifo (named pipe)"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def check_output_path(
    output: str | os.PathLike,
    *,
    writer: Any = None,
    inputs: Mapping[str, Any] | None = None,
) -> Path:
    """Check that a video may be written to ``output``, before any work is done.

    Args:
        output: the file to write.
        writer: the writer that will write it (instance or class); its :func:`writer_suffixes` are
            the extensions allowed. None allows ``.mp4`` only.
        inputs: the files the video is made from, by what they are (``{"portrait": path,
            "audio": path}``); entries that are not paths (arrays, bytes, None) are ignored.

    Returns:
        ``output`` as a :class:`~pathlib.Path`.

    Raises:
        OutputError: ``output`` is an input, not a regular file, in a folder that does not exist
            or cannot be written, or has an extension the writer does not produce.
    """
    if not isinstance(output, (str, os.PathLike)) or not os.fspath(output):
        raise OutputError(f"the output must be a file path such as 'out.mp4', got {output!r}")
    path = Path(output)
    real = Path(os.path.realpath(path))
    try:
        st = os.stat(real)
    except OSError:
        st = None
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise OutputError(f"output path {path} is a directory; give a file name such as {path / 'out.mp4'}")
    if st is not None and not stat.S_ISREG(st.st_mode):
        where = f" ({real})" if real != path.absolute() else ""
        raise OutputError(
            f"output path {path}{where} is {_kind(st.st_mode)}, not a regular file; talkinghead writes "
            "videos only to regular files (it would replace the device or pipe). Choose a file path"
        )
    for what, given in (inputs or {}).items():
        if not isinstance(given, (str, os.PathLike)) or not os.fspath(given):
            continue
        same = os.path.realpath(given) == os.fspath(real)
        if not same and st is not None:
            try:
                same = os.path.samefile(given, real)
            except OSError:
                same = False
        if same:
            raise OutputError(
                f"the output {path} is the input {what} {os.fspath(given)}; writing the video there would destroy "
                "it. Choose another output path"
            )
    _check_suffix(path, writer)
    parent = real.parent
    if not parent.exists():
        raise OutputError(f"the folder {path.parent} does not exist; create it first or choose another output path")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write to the folder {path.parent} (permission denied); choose another output path")
    return path


def _check_suffix(path: Path, writer: Any) -> None:
    allowed = writer_suffixes(writer) if writer is not None else (".mp4",)
    suffix = path.suffix.lower()
    if suffix in allowed:
        return
    name = getattr(writer, "name", "mp4")
    listing = ", ".join(allowed)
    if not suffix:
        raise OutputError(f"the output {path} has no extension; the {name} writer writes {listing} files (e.g. {path}{allowed[0]})")
    others = [w for w in _writers_for(suffix) if w != name]
    if others:
        hint = f"the {others[0]} writer does: pass writer={others[0]!r} (--writer {others[0]})"
    else:
        hint = f"no installed writer produces {suffix} files; use {listing}"
    raise OutputError(f"the {name} writer cannot write {suffix} files (it writes {listing}); {hint}")


# -- atomic replacement ----------------------------------------------------------------------------
def _host_tag() -> str:
    return hashlib.sha1(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:8]


def temp_name(path: str | os.PathLike) -> str:
    """The hidden temporary name a video for ``path`` is written under (same folder, same suffix)."""
    path = Path(path)
    return f".{path.stem}{_TEMP_MARK}{_host_tag()}-{os.getpid()}-{uuid.uuid4().hex[:8]}{path.suffix}"


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    if os.name != "posix":  # no safe liveness test without extra packages: keep the file
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists (another user's)
        return True
    return True


def clean_stale_temp_files(folder: str | os.PathLike) -> list[Path]:
    """Remove temporary videos in ``folder`` left by dead processes of this host; return them.

    Only files named by :func:`temp_name` whose process no longer runs are removed; files of live
    processes, of other hosts (a shared network folder) and every other file are left alone.
    """
    removed: list[Path] = []
    host = _host_tag()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        if _TEMP_MARK not in entry.name:
            continue
        match = _TEMP_RE.match(entry.name)
        if match is None or match["host"] != host or _pid_alive(int(match["pid"])):
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            os.unlink(entry.path)
        except OSError as exc:
            log.debug("could not remove stale temporary file %s: %s", entry.path, exc)
            continue
        log.info("removed %s, left behind by a process that no longer runs", entry.path)
        removed.append(Path(entry.path))
    return removed


def _refuse_special(path: Path) -> None:
    """Refuse to rename over anything but a regular file (checked again just before the rename)."""
    try:
        st = os.stat(path)
    except OSError:
        return
    if not stat.S_ISREG(st.st_mode):
        raise OutputError(f"output path {path} is {_kind(st.st_mode)}, not a regular file; choose a file path")


@contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[Path]:
    """Write ``path`` atomically: yields a new empty temporary file to write to.

    When the block ends normally the temporary file replaces ``path`` in one rename; when it raises
    (anything, including KeyboardInterrupt or the CLI's SIGTERM handling) the temporary file is
    removed and ``path`` is left as it was. Stale temporary files of dead processes in the same
    folder are removed first.

    Raises:
        OutputError: the folder cannot be written.
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    clean_stale_temp_files(folder)
    tmp = folder / temp_name(path)
    try:
        # os.open with 0o666 honours the user's umask (mkstemp would make the video owner-only)
        os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
    except OSError as exc:
        raise OutputError(f"cannot write to {folder}: {exc.strerror or exc}; choose another output path") from exc
    try:
        yield tmp
        _refuse_special(path)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
