"""Native log lines (mediapipe, TFLite, absl) routed to :mod:`logging` instead of the terminal.

mediapipe's graphs and the TFLite/LiteRT interpreter write INFO and WARNING lines straight to file
descriptor 2 from C++ (``Created TensorFlow Lite XNNPACK delegate``, ``All log messages before
absl::InitializeLog()``, ``Feedback manager requires a model with a single signature``...). No
environment variable may be set from library code, so :func:`native_output` captures what native code
writes to descriptor 2 *while our native calls run*: known noise goes to the ``talkinghead.face``
logger at DEBUG, anything else is written back to the real stderr unchanged. The capture is shared by
concurrent callers (reference-counted under a lock), so nested and parallel calls are safe; output
of other threads during the window is delayed, never lost.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger("talkinghead.face")

__all__ = ["native_output", "is_native_noise"]

_NOISE = re.compile(
    rb"^(INFO: Created TensorFlow Lite|INFO: Initialized TensorFlow Lite|WARNING: All log messages before absl::"
    rb"|[WIE]\d{4} [\d:.]+\s+\d+ [\w.]+\.(cc|h):\d+\]"
    rb"|WARNING: Logging before InitGoogleLogging|\[libprotobuf (ERROR|WARNING) )"
)

_lock = threading.Lock()
_depth = 0
_saved_fd: int | None = None
_sink = None


def is_native_noise(line: bytes) -> bool:
    """Whether a line written by native code is one of the known informational messages."""
    return bool(_NOISE.match(line.strip()))


def _forward(data: bytes) -> None:
    keep = []
    for line in data.splitlines(keepends=True):
        if is_native_noise(line):
            log.debug("native: %s", line.decode("utf-8", "replace").rstrip())
        else:
            keep.append(line)
    if keep:
        try:
            os.write(2, b"".join(keep))
        except OSError:  # stderr closed: nothing to give back to
            pass


@contextmanager
def native_output() -> Iterator[None]:
    """Capture native writes to descriptor 2 for the duration of the block (see the module docstring)."""
    global _depth, _saved_fd, _sink
    started = False
    with _lock:
        if _depth == 0:
            try:
                sys.stderr.flush()
            except (AttributeError, OSError, ValueError):
                pass
            sink = saved = None
            try:
                sink = tempfile.TemporaryFile()  # noqa: SIM115 - lives across the yield, closed below
                saved = os.dup(2)
                os.dup2(sink.fileno(), 2)
            except OSError:  # no usable descriptor 2 (embedded interpreters): run uncaptured
                if saved is not None:
                    os.close(saved)
                    saved = None
                if sink is not None:
                    sink.close()
            if saved is not None:
                _saved_fd, _sink = saved, sink
                started = True
        if _saved_fd is not None:
            _depth += 1
            started = True
    try:
        yield
    finally:
        if started:
            with _lock:
                _depth -= 1
                if _depth == 0 and _saved_fd is not None:
                    os.dup2(_saved_fd, 2)
                    os.close(_saved_fd)
                    sink, _saved_fd, _sink = _sink, None, None
                    sink.seek(0)
                    data = sink.read()
                    sink.close()
                    _forward(data)
