"""Local worker processes for ``workers > 1``: spawned (not forked, so CUDA works), one pipe each.

Each worker loads models once (its own :class:`~talkinghead.ModelCache`) and renders one job at a
time. A worker that dies (out of memory, a crash in native code) fails only the job it held: the
driver records it and starts a replacement. Workers end when the driver closes their pipe, and on
Linux the kernel kills them if the driver dies (``PR_SET_PDEATHSIG``), so a killed batch leaves no
orphans rendering on.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import signal
import sys
from collections.abc import Sequence
from multiprocessing.connection import Connection, wait
from typing import Any

from .jobs import ResolvedJob

log = logging.getLogger(__name__)

__all__ = ["ProcessEngine"]


class _Worker:
    def __init__(self, ctx: Any, number: int, plugins: Sequence[str], log_level: int) -> None:
        self.number = number
        self.conn, child = ctx.Pipe(duplex=True)
        self.process = ctx.Process(
            target=_worker_main,
            args=(child, tuple(plugins), log_level),
            name=f"talkinghead-batch-{number}",
            daemon=True,
        )
        self.process.start()
        child.close()
        self.job: ResolvedJob | None = None

    @property
    def name(self) -> str:
        return f"local-{self.number}"


class ProcessEngine:
    """N spawned worker processes on this machine."""

    name = "local"

    def __init__(self, workers: int, plugins: Sequence[str] = ()) -> None:
        self.capacity = int(workers)
        self.plugins = tuple(plugins)
        self._ctx = mp.get_context("spawn")
        self._workers: list[_Worker] = []
        self._started = 0

    def _spawn(self) -> _Worker:
        worker = _Worker(self._ctx, self._started, self.plugins, logging.getLogger("talkinghead").getEffectiveLevel())
        self._started += 1
        return worker

    def start(self) -> None:
        self._workers = [self._spawn() for _ in range(self.capacity)]

    def submit(self, job: ResolvedJob) -> None:
        worker = next(w for w in self._workers if w.job is None)
        worker.job = job
        try:
            worker.conn.send(job)
        except (BrokenPipeError, OSError):
            pass  # the worker is dead; wait() notices and fails the job

    def wait(self, timeout: float, emit) -> None:
        busy = [w for w in self._workers if w.job is not None]
        if not busy:
            return
        handles: dict[Any, _Worker] = {}
        for w in busy:
            handles[w.conn] = w
            handles[w.process.sentinel] = w
        for ready in wait(list(handles), timeout=timeout):
            worker = handles[ready]
            if worker.job is None:
                continue
            if ready is worker.conn:
                try:
                    while worker.conn.poll():
                        message = worker.conn.recv()
                        if message[0] == "progress":
                            emit(("progress", worker.job.index, message[1], message[2]))
                        else:
                            job, worker.job = worker.job, None
                            emit(("done", job.index, message[1], worker.name))
                            break
                    continue
                except (EOFError, OSError):
                    pass  # died mid-message: handled below
            if worker.job is not None and not worker.process.is_alive():
                self._replace(worker, emit)

    def _replace(self, worker: _Worker, emit) -> None:
        job, worker.job = worker.job, None
        worker.process.join(timeout=1)
        code = worker.process.exitcode
        how = f"was killed by signal {-code}" if code is not None and code < 0 else f"exited with code {code}"
        log.warning("worker %s %s while rendering job %s; starting another", worker.name, how, job.id)
        outcome = {
            "status": "error",
            "error": {
                "type": "WorkerCrashed",
                "message": f"the worker process {how} while rendering this job (out of memory? a crash in a "
                "backend?); the other jobs went on. Run this job alone to see more",
            },
            "timings": {},
        }
        worker.conn.close()
        index = self._workers.index(worker)
        self._workers[index] = self._spawn()
        emit(("done", job.index, outcome, worker.name))

    def close(self) -> None:
        for w in self._workers:
            try:
                w.conn.send(None)
            except (BrokenPipeError, OSError):
                pass
        for w in self._workers:
            w.process.join(timeout=10)
            if w.process.is_alive():
                w.process.terminate()
                w.process.join(timeout=5)
            if w.process.is_alive():
                w.process.kill()
                w.process.join(timeout=5)
            w.conn.close()
        self._workers = []


def _die_with_parent() -> None:
    """Linux: ask the kernel to SIGKILL this worker when the driver process dies."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
    except OSError as exc:  # no libc by that name: the pipe's EOF still ends an idle worker
        log.debug("PR_SET_PDEATHSIG unavailable: %s", exc)


def _worker_main(conn: Connection, plugins: tuple[str, ...], log_level: int) -> None:
    """A worker process: render jobs received on ``conn`` until it closes or sends None."""
    _die_with_parent()
    if mp.parent_process() is not None and not mp.parent_process().is_alive():
        return  # the driver died before PR_SET_PDEATHSIG took effect
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle
    logging.basicConfig(level=log_level, format="%(levelname)s %(name)s [worker]: %(message)s")
    from ..cache import ModelCache
    from .render import load_plugins, render_job

    cache = ModelCache()
    try:
        load_plugins(plugins)
    except Exception as exc:  # reported on every job instead of killing the worker silently
        failure = {"status": "error", "error": {"type": type(exc).__name__, "message": str(exc)}, "timings": {}}
    else:
        failure = None
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            break
        if job is None:
            break
        if failure is not None:
            conn.send(("done", failure))
            continue
        outcome = render_job(job, cache, progress=lambda done, total: conn.send(("progress", done, total)))
        conn.send(("done", outcome))
    cache.clear()
    conn.close()
