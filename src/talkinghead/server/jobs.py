"""Render jobs: a bounded queue of work run by a few worker threads, with status and progress in
the :class:`~talkinghead.server.store.Store`.

A job runs to its end whether or not the client that asked for it is still connected. ``cancel``
stops a queued job before it starts and a running one at its next progress report; finished jobs
expire ``job_ttl`` seconds after they end (their video goes with them).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..errors import TalkingHeadError
from .errors import ApiError, describe
from .store import Store, new_id

log = logging.getLogger(__name__)

__all__ = ["JobQueue", "JobContext", "JobCancelled", "ACTIVE", "FINISHED"]

ACTIVE = ("queued", "in_progress")
FINISHED = ("completed", "failed", "cancelled")

#: Default progress ranges per stage (fraction of the whole job); an enhancer shares the animator's.
PHASES: dict[str, tuple[float, float]] = {
    "prepare": (0.0, 0.05),
    "asr": (0.0, 0.05),
    "llm": (0.05, 0.1),
    "tts": (0.05, 0.15),
    "animate": (0.15, 0.97),
    "enhance": (0.15, 0.97),
}


class JobCancelled(Exception):
    """Raised inside a job's work when the job was cancelled."""


class JobContext:
    """What a job's work function gets: where to write its video, and a progress callback.

    ``progress(stage, done, total)`` records progress (at most every ``interval`` seconds) and
    raises :class:`JobCancelled` once the job was cancelled, which stops the animator and the
    writer (the writer removes its partial file).
    """

    def __init__(self, queue: JobQueue, job_id: str, cancel: threading.Event, *, enhanced: bool = False,
                 interval: float = 0.2) -> None:
        self.queue, self.id, self._cancel = queue, job_id, cancel
        self.interval = interval
        self._last = 0.0
        self._stage = ""
        self.phases = dict(PHASES)
        if enhanced:  # the animator's frames are enhanced as they come: split the range
            lo, hi = PHASES["animate"]
            mid = (lo + hi) / 2
            self.phases["animate"], self.phases["enhance"] = (lo, mid), (mid, hi)

    @property
    def video_path(self):
        """The local path to write this job's video to."""
        return self.queue.store.file_path("job", self.id, "video.mp4")

    def file_path(self, name: str):
        return self.queue.store.file_path("job", self.id, name)

    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def check(self) -> None:
        """Raise :class:`JobCancelled` if the job was cancelled."""
        if self._cancel.is_set():
            raise JobCancelled(self.id)

    def progress(self, stage: str, done: int, total: int) -> None:
        self.check()
        lo, hi = self.phases.get(stage, (0.0, 0.99))
        fraction = lo + (hi - lo) * (done / total if total > 0 else 1.0)
        now = time.monotonic()
        if stage != self._stage or now - self._last >= self.interval or done >= total:
            self._stage, self._last = stage, now
            fields = {"progress": round(min(fraction, 0.99), 4), "stage": stage}

            def change(record: dict[str, Any]) -> None:
                record.update(fields)
                if record.get("cancel_requested"):  # asked through another worker of a shared store
                    self._cancel.set()

            self.queue._update(self.id, change)
            self.check()


Work = Callable[[JobContext], dict[str, Any]]


class JobQueue:
    """Runs jobs on ``workers`` threads, at most ``max_queued`` waiting or running at once.

    Args:
        store: where job records live.
        workers: jobs that run at the same time.
        max_queued: jobs accepted (waiting + running) before new ones are refused with 503.
        ttl: seconds a finished job is kept.
    """

    def __init__(self, store: Store, *, workers: int, max_queued: int, ttl: float) -> None:
        self.store = store
        self.workers, self.max_queued, self.ttl = workers, max_queued, ttl
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._active: dict[str, threading.Event] = {}
        self._waiters: dict[str, list[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = {}
        self._closed = False
        self._recover()

    def _recover(self) -> None:
        """Jobs left queued or running by a previous process cannot resume: mark them failed."""
        for jid in self.store.ids("job"):
            record = self.store.get("job", jid)
            if record and record.get("status") in ACTIVE:
                now = time.time()
                message = "the server stopped before this job finished; submit it again"
                record.update(status="failed", finished_at=now, expires_at=now + self.ttl,
                              error={"type": "Interrupted", "message": message, "status": 500})
                self.store.put("job", jid, record)

    # -- submitting ------------------------------------------------------------------------------
    def submit(self, kind: str, params: dict[str, Any], work: Work, *, enhanced: bool = False,
               extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """Queue ``work`` and return the new job's record (status ``queued``).

        Raises:
            ApiError: 503 when the queue is full or the server is shutting down.
        """
        with self._lock:
            if self._closed:
                raise ApiError(503, "ShuttingDown", "the server is shutting down; try again shortly",
                               {"Retry-After": "10"})
            if len(self._active) >= self.max_queued:
                raise ApiError(
                    503, "QueueFull",
                    f"the server is busy ({len(self._active)} jobs queued or running); try again in a minute",
                    {"Retry-After": "30"},
                )
            jid = new_id("job")
            cancel = threading.Event()
            self._active[jid] = cancel
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="talkinghead-job")
        record = {
            "id": jid, "object": "video", "kind": kind, "status": "queued", "progress": 0.0, "stage": None,
            "created_at": time.time(), "started_at": None, "finished_at": None, "expires_at": None,
            "params": params, "result": None, "error": None, **(extra or {}),
        }
        self.store.put("job", jid, record)
        self._pool.submit(self._run, jid, work, cancel, enhanced)
        return record

    def _run(self, jid: str, work: Work, cancel: threading.Event, enhanced: bool) -> None:
        ctx = JobContext(self, jid, cancel, enhanced=enhanced)
        try:
            record = self.get(jid)
            if cancel.is_set() or record is None or record.get("cancel_requested"):
                raise JobCancelled(jid)
            self._set(jid, status="in_progress", started_at=time.time())
            result = work(ctx)
            ctx.check()
            self._finish(jid, status="completed", progress=1.0, stage=None, result=result)
        except JobCancelled:
            self._finish(jid, status="cancelled", stage=None)
        except BaseException as exc:  # a job's failure is its record's, never the worker's
            if not isinstance(exc, TalkingHeadError):
                log.error("job %s failed", jid, exc_info=exc)
            status, type_, message = describe(exc)
            self._finish(jid, status="failed", error={"type": type_, "message": message, "status": status})
        finally:
            with self._lock:
                self._active.pop(jid, None)
                waiters = self._waiters.pop(jid, [])
            for loop, event in waiters:
                loop.call_soon_threadsafe(event.set)

    def _set(self, jid: str, **fields: Any) -> None:
        self._update(jid, lambda r: r.update(fields))

    def _update(self, jid: str, change: Callable[[dict[str, Any]], None]) -> None:
        try:
            self.store.update("job", jid, change)
        except KeyError:  # deleted while running
            pass

    def _finish(self, jid: str, **fields: Any) -> None:
        now = time.time()
        self._set(jid, finished_at=now, expires_at=now + self.ttl, **fields)

    # -- asking ----------------------------------------------------------------------------------
    def get(self, jid: str) -> dict[str, Any] | None:
        return self.store.get("job", jid)

    def active_count(self) -> int:
        with self._lock:
            return len(self._active)

    async def wait(self, jid: str, timeout: float) -> dict[str, Any] | None:
        """Wait up to ``timeout`` seconds for the job to finish; return its record."""
        loop = asyncio.get_running_loop()
        event = asyncio.Event()
        with self._lock:
            running = jid in self._active
            if running:
                self._waiters.setdefault(jid, []).append((loop, event))
        if running:
            try:
                await asyncio.wait_for(event.wait(), timeout)
            except asyncio.TimeoutError:
                pass
        return self.get(jid)

    def cancel(self, jid: str) -> dict[str, Any] | None:
        """Ask a queued or running job to stop; returns its record (None if there is none).

        A job running on this worker stops at its next progress report; one queued here is
        skipped; one running on another worker of a shared store sees ``cancel_requested``.
        """
        with self._lock:
            event = self._active.get(jid)
        if event is not None:
            event.set()

        def change(record: dict[str, Any]) -> None:
            if record.get("status") in ACTIVE:
                record["cancel_requested"] = True
                if record.get("status") == "queued":  # it never starts: show it at once
                    now = time.time()
                    record.update(status="cancelled", finished_at=now, expires_at=now + self.ttl)

        try:
            return self.store.update("job", jid, change)
        except KeyError:
            return None

    def delete(self, jid: str) -> bool:
        """Remove a finished job and its files."""
        return self.store.delete("job", jid)

    # -- housekeeping ----------------------------------------------------------------------------
    def sweep(self, now: float | None = None) -> int:
        """Delete finished jobs whose time is up; returns how many."""
        now = time.time() if now is None else now
        n = 0
        for jid in self.store.ids("job"):
            record = self.store.get("job", jid)
            if record and record.get("status") in FINISHED and (record.get("expires_at") or now + 1) <= now:
                if self.store.delete("job", jid):
                    n += 1
        if n:
            log.info("expired %d finished job(s)", n)
        return n

    def close(self, wait: bool = False) -> None:
        """Refuse new jobs, cancel the active ones and stop the workers."""
        with self._lock:
            self._closed = True
            events = list(self._active.values())
            pool = self._pool
        for event in events:
            event.set()
        if pool is not None:
            pool.shutdown(wait=wait, cancel_futures=False)
