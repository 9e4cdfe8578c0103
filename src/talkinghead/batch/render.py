"""Rendering one job where the models live: in this process, a worker process or a Ray actor.

:func:`render_job` never raises for a job's own failure: it returns a record with the error's type
and message, so one bad job cannot stop a batch. Models are loaded once per process through the
:class:`~talkinghead.ModelCache` the caller owns.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..cache import ModelCache
from ..errors import ConfigError, TalkingHeadError
from .jobs import ResolvedJob

log = logging.getLogger(__name__)

__all__ = ["error_info", "load_plugins", "render_job"]

FrameProgress = Callable[[int, int], None]


def render_job(
    job: ResolvedJob,
    cache: ModelCache,
    *,
    progress: FrameProgress | None = None,
    inputs: Mapping[str, bytes] | None = None,
    output: str | None = None,
) -> dict[str, Any]:
    """Render ``job`` and describe the outcome.

    Args:
        job: the resolved job.
        cache: where this process keeps its loaded models.
        progress: ``progress(frames_done, frames_total)`` per chunk of frames.
        inputs: the portrait (``"image"``) and audio (``"audio"``) as bytes, when they were shipped
            instead of read from the job's paths (Ray).
        output: write here instead of ``job.output`` (a temporary file whose bytes are shipped back).

    Returns:
        ``{"status": "ok"|"error", "error": None|{"type", "message"}, "frames", "duration",
        "timings": {"setup", "tts", "render", "total"}}``.
    """
    from ..avatar import Avatar
    from ..values import VoiceProfile

    inputs = inputs or {}
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    record: dict[str, Any] = {"status": "error", "error": None, "frames": 0, "duration": 0.0, "timings": timings}

    def report(stage: str, done: int, total: int) -> None:
        if progress is not None:
            progress(done, total)

    try:
        avatar = Avatar(
            inputs.get("image", job.image),
            **{stage: (name, dict(config)) for stage, (name, config) in job.specs.items()},
            fps=job.fps,
            multiple_faces=job.multiple_faces,
            max_size=job.max_size,
            progress=report,
            cache=cache,
        )
        avatar.preload()
        timings["setup"] = time.perf_counter() - t0
        if job.text is not None:
            t1 = time.perf_counter()
            audio = avatar.synthesize(job.text, voice=VoiceProfile(voice=job.voice) if job.voice else None)
            timings["tts"] = time.perf_counter() - t1
        else:
            audio = inputs.get("audio", job.audio)
        t2 = time.perf_counter()
        video = avatar.speak(audio, output or job.output)
        timings["render"] = time.perf_counter() - t2
        record.update(status="ok", frames=video.n_frames, duration=round(video.duration, 6))
    except TalkingHeadError as exc:
        record["error"] = error_info(exc)
    except Exception as exc:  # a bug in a backend: recorded, and the batch goes on
        log.debug("job %s failed with an internal error", job.id, exc_info=True)
        record["error"] = error_info(exc, internal=True)
    timings["total"] = time.perf_counter() - t0
    return record


def error_info(exc: BaseException, *, internal: bool = False) -> dict[str, Any]:
    """The report's view of an error: its type name and message (and whether it is a bug)."""
    info: dict[str, Any] = {"type": type(exc).__name__, "message": str(exc) or repr(exc)}
    if internal:
        info["internal"] = True
    return info


def load_plugins(specs: Sequence[str]) -> None:
    """Register plug-ins named by import strings (``"pkg.module"`` or ``"pkg.module:Attr"``).

    A class is instantiated; a module or object is registered as it is. Worker processes and Ray
    actors call this so that plug-ins the caller added at run time (not installed as entry points)
    are there too.
    """
    from ..plugins import add_plugin, get_plugin_manager

    for spec in specs:
        if get_plugin_manager().has_plugin(spec):
            continue
        module_name, _, attr = spec.partition(":")
        try:
            obj: Any = importlib.import_module(module_name)
            for part in filter(None, attr.split(".")):
                obj = getattr(obj, part)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"plug-in {spec!r} cannot be imported: {exc}") from exc
        if isinstance(obj, type):
            obj = obj()
        add_plugin(obj, name=spec)
