"""``talkinghead batch JOBS``: many videos from a CSV or JSONL file, resumable, on workers or Ray.

Exit codes: 0 every job rendered (or was already done), 1 some jobs failed (see the report) or the
batch could not start, 130 interrupted.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TextIO

from ..options import parse_settings
from .common import ProgressBar


class BatchBar(ProgressBar):
    """One line: jobs done of total, failures, frames and frame rate."""

    def update(self, p) -> None:  # p: talkinghead.batch.BatchProgress
        if not self.enabled:
            return
        width = 24
        filled = int(width * p.jobs_done / max(p.jobs_total, 1))
        rate = p.frames_done / max(p.elapsed, 1e-6)
        extra = f", {p.failed} failed" if p.failed else ""
        extra += f", {p.skipped} skipped" if p.skipped else ""
        line = (
            f"\r   batch [{'#' * filled}{'.' * (width - filled)}] {p.jobs_done}/{p.jobs_total} jobs{extra}"
            f" | {p.frames_done}/{p.frames_total} frames {rate:5.1f} fps"
        )
        if line != self._last:
            self.stream.write(line.ljust(len(self._last)))
            self.stream.flush()
            self._last = line


def cmd_batch(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from ..batch import run

    jobs = Path(args.jobs)
    report = Path(args.report) if args.report else jobs.with_name(jobs.stem + ".report.jsonl")
    settings = parse_settings(args.set or [])
    if settings.get(""):
        from ..errors import ConfigError

        raise ConfigError("in a batch, write --set STAGE.key=value (e.g. --set tts.length_scale=1.2)")
    stages = {s: getattr(args, s) for s in ("tts", "animator", "enhancer", "writer") if getattr(args, s)}
    bar = BatchBar(err, enabled=not args.quiet)
    t0 = time.perf_counter()
    try:
        result = run(
            jobs,
            report=report,
            resume=not args.force,
            engine=args.engine,
            workers=args.workers,
            address=args.address,
            num_gpus=args.num_gpus,
            shared_storage=args.shared_storage,
            stages=stages,
            options=settings,
            fps=args.fps,
            multiple_faces=args.multiple_faces or "largest",
            max_size=args.max_size,
            voice=args.voice,
            plugins=args.plugin or (),
            progress=bar.update,
        )
    finally:
        bar.close()
    n = len(result.records)
    out.write(
        f"{n} jobs: {len(result.rendered)} rendered, {len(result.skipped)} already done, {len(result.failed)} failed; "
        f"{result.frames} frames in {time.perf_counter() - t0:.1f} s ({args.engine}, {args.workers} worker(s)); "
        f"report: {report}\n"
    )
    for record in result.failed:
        error = record.error or {}
        out.write(f"  failed {record.id} (line {record.line}): {error.get('type')}: {error.get('message')}\n")
    return 1 if result.failed else 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "batch",
        help="render many videos from a CSV/JSONL jobs file (resumable; workers or Ray)",
        description="Render one video per row of JOBS (CSV with a header, or JSONL). Columns: image, text or "
        "audio, output, and optionally id, fps, tts, animator, enhancer, writer, multiple_faces, max_size, voice, "
        "set (stage.key=value;…) or stage.key columns. Relative paths are relative to the jobs file.",
    )
    p.add_argument("jobs", metavar="JOBS", help="jobs file (.csv or .jsonl)")
    p.add_argument("--report", help="JSONL report to append to and resume from (default: JOBS.report.jsonl)")
    p.add_argument("--force", action="store_true", help="render every job, even those already done")
    p.add_argument("--workers", "-j", type=int, default=1, help="worker processes (or Ray actors); default 1")
    p.add_argument("--engine", choices=("local", "ray"), default="local", help="where jobs run (default local)")
    p.add_argument("--address", help="Ray cluster address (default: start a local Ray instance)")
    p.add_argument("--num-gpus", type=float, help="GPUs per Ray actor (default: 1 if the cluster has GPUs)")
    p.add_argument(
        "--shared-storage", action="store_true", help="Ray actors write outputs directly (paths seen by every node)"
    )
    p.add_argument("--fps", type=float, default=20.0, help="frames per second for jobs without an fps column")
    for stage in ("tts", "animator", "enhancer", "writer"):
        p.add_argument(f"--{stage}", metavar="NAME", help=f"default {stage} backend for jobs without a {stage} column")
    p.add_argument("--set", action="append", metavar="STAGE.KEY=VALUE", help="default backend option, repeatable")
    p.add_argument("--multiple-faces", choices=("largest", "refuse"), help="what to do with several faces")
    p.add_argument("--max-size", type=int, default=1024, help="downscale larger portraits to this (default 1024)")
    p.add_argument("--voice", help="default TTS voice")
    p.add_argument("--plugin", action="append", metavar="MODULE[:ATTR]", help="plug-in to load in every worker")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_batch)
