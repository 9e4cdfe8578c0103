"""Running a batch: resume, scheduling on an engine, the report and progress.

The driver (this module) reads and resolves the jobs, skips those already done, hands the rest to
an engine — this process, local worker processes, or Ray actors — one job per worker at a time, and
appends each outcome to the report as it arrives. Every engine runs the same
:func:`~talkinghead.batch.render.render_job`, so outputs and reports do not depend on the engine.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..cache import ModelCache
from ..errors import ConfigError, OutputError
from .jobs import BadJob, Defaults, Job, ResolvedJob, read_jobs, resolve_jobs
from .render import error_info, render_job
from .report import JobRecord, Report, file_sha256, read_report

log = logging.getLogger(__name__)

__all__ = ["ENGINES", "BatchProgress", "BatchResult", "run"]

ENGINES = ("local", "ray")


@dataclass(frozen=True)
class BatchProgress:
    """Where a batch stands; passed to the ``progress`` callback after every event.

    Attributes:
        jobs_total: jobs in the batch.
        jobs_done: jobs finished in any way (rendered, skipped, failed).
        failed, skipped: how many of those failed / were already done.
        frames_done: frames rendered in this run (finished jobs and jobs in flight).
        frames_total: frames of finished jobs plus the known totals of jobs in flight.
        running: ids of the jobs in flight.
        elapsed: seconds since the batch started.
    """

    jobs_total: int
    jobs_done: int
    failed: int
    skipped: int
    frames_done: int
    frames_total: int
    running: tuple[str, ...]
    elapsed: float


@dataclass
class BatchResult:
    """What a batch did: one :class:`JobRecord` per job, in the jobs' order."""

    records: list[JobRecord]
    report: Path | None
    elapsed: float
    engine: str
    workers: int

    @property
    def rendered(self) -> list[JobRecord]:
        return [r for r in self.records if r.status == "ok"]

    @property
    def skipped(self) -> list[JobRecord]:
        return [r for r in self.records if r.status == "skipped"]

    @property
    def failed(self) -> list[JobRecord]:
        return [r for r in self.records if r.status == "error"]

    @property
    def frames(self) -> int:
        """Frames rendered in this run."""
        return sum(r.frames for r in self.rendered)


Event = tuple  # ("progress", index, done, total) | ("done", index, record dict, worker name)


Emit = Callable[[Event], None]


class Engine(Protocol):
    """Runs resolved jobs; the driver keeps at most ``capacity`` of them in flight.

    ``wait`` blocks for at most ``timeout`` seconds (or while it renders, in-process) and passes
    every event to ``emit``: ``("progress", index, done, total)`` per chunk of frames and
    ``("done", index, outcome, worker)`` when a job ends (``outcome`` as
    :func:`~talkinghead.batch.render.render_job` returns it; the output is on disk by then).
    """

    name: str
    capacity: int

    def start(self) -> None: ...

    def submit(self, job: ResolvedJob) -> None: ...

    def wait(self, timeout: float, emit: Emit) -> None: ...

    def close(self) -> None: ...


class InProcessEngine:
    """Renders in the calling process, with its :class:`ModelCache` (``workers=1``)."""

    name = "local"
    capacity = 1

    def __init__(self, cache: ModelCache | None = None) -> None:
        self.cache = cache if cache is not None else ModelCache()
        self._pending: deque[ResolvedJob] = deque()

    def start(self) -> None:
        return None

    def submit(self, job: ResolvedJob) -> None:
        self._pending.append(job)

    def wait(self, timeout: float, emit: Emit) -> None:
        if self._pending:
            job = self._pending.popleft()
            outcome = render_job(job, self.cache, progress=lambda d, t: emit(("progress", job.index, d, t)))
            emit(("done", job.index, outcome, "local-0"))

    def close(self) -> None:
        return None


def run(
    jobs: str | os.PathLike | Sequence[Job | Mapping[str, Any]],
    *,
    report: str | os.PathLike | None = None,
    resume: bool = True,
    engine: str = "local",
    workers: int = 1,
    address: str | None = None,
    num_gpus: float | None = None,
    shared_storage: bool = False,
    ray_init: Mapping[str, Any] | None = None,
    stages: Mapping[str, str] | None = None,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    fps: float = 20.0,
    multiple_faces: str = "largest",
    max_size: int = 1024,
    voice: str | None = None,
    plugins: Sequence[str] = (),
    progress: Callable[[BatchProgress], None] | None = None,
    cache: ModelCache | None = None,
) -> BatchResult:
    """Render many videos; a failing job is recorded and the batch goes on.

    Args:
        jobs: a jobs file (``.csv`` or ``.jsonl``) or a list of :class:`Job` / row dicts
            (``{"image": ..., "text": ..., "output": ..., "tts.length_scale": 1.2}``).
        report: the JSONL report to append to (and to resume from). None: no report file.
        resume: skip jobs whose output exists and matches the fingerprint recorded in ``report``.
        engine: ``"local"`` (this machine) or ``"ray"`` (a Ray cluster; ``pip install 'talkinghead[ray]'``).
        workers: local: 1 renders in this process, N > 1 in N worker processes (spawned, so CUDA
            works); ray: the number of actors.
        address: Ray cluster address (``"auto"``, ``"ray://host:10001"``); None starts a local
            Ray instance for the batch and stops it afterwards.
        num_gpus: GPUs per Ray actor (None: 1 when the cluster has GPUs, else 0).
        shared_storage: Ray actors write outputs themselves (the output paths are on storage every
            node sees) instead of shipping the bytes back to the driver.
        ray_init: extra keyword arguments for ``ray.init`` (e.g. ``{"num_cpus": 2}``).
        stages: default backend per stage (``{"animator": "viseme"}``); a job's columns override it.
        options: default backend options per stage (``{"tts": {"length_scale": "1.2"}}``).
        fps, multiple_faces, max_size, voice: defaults for jobs that do not set them.
        plugins: import strings of plug-ins to register in every worker (``"pkg.mod:Plugin"``),
            for backends that are not installed as entry points.
        progress: called with a :class:`BatchProgress` after every event.
        cache: the model cache of the in-process engine (default: a new one).

    Returns:
        A :class:`BatchResult` with one record per job, in order.

    Raises:
        ConfigError: unreadable jobs file, unknown engine, bad worker count.
        MissingDependencyError: ``engine="ray"`` without Ray installed.
    """
    t0 = time.perf_counter()
    if engine not in ENGINES:
        raise ConfigError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if int(workers) < 1:
        raise ConfigError(f"workers must be at least 1, got {workers}")
    workers = int(workers)
    if plugins:
        from .render import load_plugins

        load_plugins(plugins)
    rows = read_jobs(jobs) if isinstance(jobs, (str, os.PathLike)) else list(jobs)
    defaults = Defaults(
        stages=dict(stages or {}),
        options={k: dict(v) for k, v in (options or {}).items()},
        fps=fps,
        multiple_faces=multiple_faces,
        max_size=max_size,
        voice=voice,
    )
    resolved = resolve_jobs(rows, defaults)
    report_path = Path(report) if report is not None else None
    if report_path is not None:
        for job in resolved:
            if job.output and os.path.realpath(job.output) == os.path.realpath(report_path):
                raise ConfigError(f"the report {report_path} is also a job's output; choose another report path")
    previous = read_report(report_path) if (resume and report_path is not None) else {}

    if engine == "ray":
        from .ray_engine import RayEngine

        runner: Engine = RayEngine(
            workers=workers,
            address=address,
            num_gpus=num_gpus,
            plugins=plugins,
            shared_storage=shared_storage,
            ray_init=ray_init,
        )
    elif workers > 1:
        from .local import ProcessEngine

        runner = ProcessEngine(workers=workers, plugins=plugins)
    else:
        runner = InProcessEngine(cache)
    return _drive(resolved, previous, runner, Report(report_path), report_path, progress, t0, workers)


def _drive(
    resolved: list[ResolvedJob | BadJob],
    previous: dict[str, JobRecord],
    runner: Engine,
    report: Report,
    report_path: Path | None,
    progress: Callable[[BatchProgress], None] | None,
    t0: float,
    workers: int,
) -> BatchResult:
    records: dict[int, JobRecord] = {}
    frames_live: dict[int, tuple[int, int]] = {}
    queue: deque[ResolvedJob] = deque()
    running: dict[int, ResolvedJob] = {}
    engine_name = runner.name

    def notify() -> None:
        if progress is None:
            return
        done = [r for r in records.values()]
        finished_frames = sum(r.frames for r in done if r.status == "ok")
        progress(
            BatchProgress(
                jobs_total=len(resolved),
                jobs_done=len(done),
                failed=sum(r.status == "error" for r in done),
                skipped=sum(r.status == "skipped" for r in done),
                frames_done=finished_frames + sum(d for d, _ in frames_live.values()),
                frames_total=finished_frames + sum(t for _, t in frames_live.values()),
                running=tuple(running[i].id for i in running),
                elapsed=time.perf_counter() - t0,
            )
        )

    def finish(record: JobRecord, index: int) -> None:
        record.engine = engine_name
        records[index] = record
        report.write(record)
        frames_live.pop(index, None)
        notify()

    def make_record(job: ResolvedJob | BadJob, status: str, **values: Any) -> JobRecord:
        return JobRecord(
            id=job.id, line=job.line, output=job.output, status=status,
            fingerprint=getattr(job, "fingerprint", None), **values,
        )  # fmt: skip

    def on_event(event: Event) -> None:
        kind, index = event[0], event[1]
        if kind == "progress":
            if index in running:
                frames_live[index] = (int(event[2]), int(event[3]))
                notify()
            return
        job = running.pop(index)
        outcome, worker = event[2], event[3]
        record = make_record(
            job, outcome["status"], error=outcome.get("error"), frames=int(outcome.get("frames") or 0),
            duration=float(outcome.get("duration") or 0.0), timings=dict(outcome.get("timings") or {}), worker=worker,
        )  # fmt: skip
        if record.status == "ok":
            stat = file_sha256(job.output)
            if stat is None:
                record.status, record.error = "error", {"type": "OutputError", "message": "the output was not written"}
            else:
                record.output_bytes, record.output_sha256 = stat
        finish(record, index)

    for job in resolved:
        if isinstance(job, BadJob):
            finish(make_record(job, "error", error=error_info(job.error)), job.index)
            continue
        before = previous.get(os.path.abspath(job.output))
        if before is not None and before.fingerprint == job.fingerprint:
            stat = file_sha256(job.output)
            if stat is not None and stat == (before.output_bytes, before.output_sha256):
                done = {"frames": before.frames, "duration": before.duration}
                finish(make_record(job, "skipped", output_bytes=stat[0], output_sha256=stat[1], **done), job.index)
                continue
        try:
            os.makedirs(os.path.dirname(job.output) or ".", exist_ok=True)
        except OSError as exc:
            err = OutputError(f"cannot create the folder of {job.output}: {exc.strerror or exc}")
            finish(make_record(job, "error", error=error_info(err)), job.index)
            continue
        queue.append(job)

    try:
        if queue:
            runner.start()
        while queue or running:
            while queue and len(running) < runner.capacity:
                job = queue.popleft()
                running[job.index] = job
                runner.submit(job)
                notify()
            runner.wait(0.2, on_event)
    finally:
        runner.close()
        report.close()
    ordered = [records[job.index] for job in resolved]
    return BatchResult(ordered, report_path, time.perf_counter() - t0, engine_name, workers)
