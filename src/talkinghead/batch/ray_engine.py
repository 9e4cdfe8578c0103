"""The Ray engine: the same jobs on a Ray cluster (``pip install 'talkinghead[ray]'``).

Each actor holds its own :class:`~talkinghead.ModelCache`, so models load once per actor, and asks
for ``num_gpus`` GPUs (one by default when the cluster has any) — one actor per GPU. The driver
ships each job's inputs as bytes (nodes need not see the driver's files); the actor renders into a
temporary file and ships the video's bytes back, and the driver writes it atomically to the job's
output. With ``shared_storage=True`` actors write the outputs themselves (paths every node sees).
Frame progress travels through a small Ray queue. Reports and resume are the driver's, exactly as
for the local engine.
"""

from __future__ import annotations

import logging
import os
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import MissingDependencyError, OutputError
from .jobs import ResolvedJob

log = logging.getLogger(__name__)

__all__ = ["RayEngine", "RenderActor"]


def import_ray():
    """Import Ray or raise :class:`MissingDependencyError` naming the ``ray`` extra."""
    try:
        import ray
    except ImportError as exc:
        raise MissingDependencyError("ray", "ray", "the Ray batch engine") from exc
    return ray


class RenderActor:
    """Renders jobs with models loaded once (wrapped with ``ray.remote`` when the engine starts)."""

    def __init__(self, plugins: Sequence[str], queue: Any) -> None:
        from ..cache import ModelCache
        from .render import load_plugins

        load_plugins(plugins)
        self.cache = ModelCache()
        self.queue = queue

    def render(
        self, job: ResolvedJob, inputs: Mapping[str, bytes], shared: bool
    ) -> tuple[dict[str, Any], bytes | None]:
        from .render import render_job

        def progress(done: int, total: int) -> None:
            try:
                self.queue.put_nowait(("progress", job.index, done, total))
            except Exception as exc:  # progress is best effort; the render goes on
                log.debug("progress not delivered: %s", exc)

        if shared:
            return render_job(job, self.cache, progress=progress, inputs=inputs), None
        with tempfile.TemporaryDirectory(prefix="talkinghead-ray-") as tmp:
            out = os.path.join(tmp, "video" + Path(job.output).suffix)
            outcome = render_job(job, self.cache, progress=progress, inputs=inputs, output=out)
            data = Path(out).read_bytes() if outcome["status"] == "ok" else None
        return outcome, data

    def close(self) -> None:
        self.cache.clear()


class RayEngine:
    """Ray actors as workers; see the module docstring."""

    name = "ray"

    def __init__(
        self,
        workers: int = 1,
        *,
        address: str | None = None,
        num_gpus: float | None = None,
        plugins: Sequence[str] = (),
        shared_storage: bool = False,
        ray_init: Mapping[str, Any] | None = None,
    ) -> None:
        self.capacity = int(workers)
        self.address = address
        self.num_gpus = num_gpus
        self.plugins = tuple(plugins)
        self.shared = bool(shared_storage)
        self.ray_init = dict(ray_init or {})
        self._ray = import_ray()
        self._owns_ray = False
        self._actors: list[Any] = []
        self._busy: dict[Any, tuple[Any, ResolvedJob]] = {}  # object ref -> (actor, job)
        self._queue = None
        self._remote_cls = None
        self._gpus = 0.0
        self._started = 0

    def start(self) -> None:
        ray = self._ray
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            kwargs.update(self.ray_init)
            # address=None starts a fresh local instance for this batch (never a stray running one)
            ray.init(address=self.address or "local", **kwargs)
            self._owns_ray = True
        from ray.util.queue import Queue

        gpus_in_cluster = float(ray.cluster_resources().get("GPU", 0))
        self._gpus = float(self.num_gpus) if self.num_gpus is not None else (1.0 if gpus_in_cluster >= 1 else 0.0)
        self._queue = Queue(actor_options={"num_cpus": 0})
        self._remote_cls = ray.remote(RenderActor)
        self._actors = [self._new_actor() for _ in range(self.capacity)]
        log.info("ray engine: %d actor(s), %g GPU each", self.capacity, self._gpus)

    def _new_actor(self) -> Any:
        self._started += 1
        return self._remote_cls.options(num_cpus=1, num_gpus=self._gpus, max_restarts=0).remote(
            self.plugins, self._queue
        )

    def submit(self, job: ResolvedJob) -> None:
        busy = {id(a) for a, _ in self._busy.values()}
        actor = next(a for a in self._actors if id(a) not in busy)
        inputs = {"image": Path(job.image).read_bytes()}
        if job.audio is not None:
            inputs["audio"] = Path(job.audio).read_bytes()
        ref = actor.render.remote(job, inputs, self.shared)
        self._busy[ref] = (actor, job)

    def wait(self, timeout: float, emit) -> None:
        ray = self._ray
        self._drain_progress(emit)
        if not self._busy:
            return
        ready, _ = ray.wait(list(self._busy), num_returns=1, timeout=timeout)
        for ref in ready:
            actor, job = self._busy.pop(ref)
            worker = f"ray-{self._actors.index(actor)}"
            try:
                outcome, data = ray.get(ref)
            except ray.exceptions.RayActorError as exc:
                log.warning("ray actor %s died while rendering job %s: %s", worker, job.id, exc)
                self._actors[self._actors.index(actor)] = self._new_actor()
                cause = str(exc).strip().splitlines()[-1][:300] if str(exc).strip() else type(exc).__name__
                outcome = _crashed(
                    f"the Ray actor died while rendering this job (out of memory, a crash in a "
                    f"backend, or it could not start: {cause})"
                )
                data = None
            except ray.exceptions.RayError as exc:
                outcome, data = _crashed(f"Ray failed to run this job: {exc}"), None
            if outcome["status"] == "ok" and not self.shared:
                try:
                    write_atomic(job.output, data or b"")
                except OutputError as exc:
                    outcome = {**outcome, "status": "error", "error": {"type": "OutputError", "message": str(exc)}}
            self._drain_progress(emit)
            emit(("done", job.index, outcome, worker))

    def _drain_progress(self, emit) -> None:
        if self._queue is None:
            return
        try:
            n = self._queue.qsize()
            items = self._queue.get_nowait_batch(n) if n else []
        except Exception as exc:  # progress is best effort
            log.debug("progress queue: %s", exc)
            return
        running = {job.index for _, job in self._busy.values()}
        for item in items:
            if item[1] in running:
                emit(item)

    def close(self) -> None:
        ray = self._ray
        for actor in self._actors:
            try:
                ray.kill(actor)
            except Exception as exc:  # already gone
                log.debug("ray.kill: %s", exc)
        self._actors = []
        self._busy.clear()
        if self._queue is not None:
            try:
                self._queue.shutdown()
            except Exception as exc:
                log.debug("queue shutdown: %s", exc)
            self._queue = None
        if self._owns_ray:
            ray.shutdown()
            self._owns_ray = False


def _crashed(message: str) -> dict[str, Any]:
    return {"status": "error", "error": {"type": "WorkerCrashed", "message": message}, "timings": {}}


def write_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.part")
    try:
        with open(tmp, "xb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from exc
