"""Many videos at once: ``talkinghead.batch.run(jobs)`` and ``talkinghead batch JOBS``.

Jobs come from a CSV or JSONL file (or a list of dicts); each makes one video. Models load once per
worker; a failing job is recorded in the JSONL report and the batch goes on; a re-run skips jobs
whose output still matches the job's fingerprint, so a killed batch loses at most the jobs in flight.
Engines: this process, local worker processes (``workers=N``), or a Ray cluster (``engine="ray"``).

>>> from talkinghead import batch
>>> result = batch.run("jobs.csv", report="jobs.report.jsonl", workers=2)   # doctest: +SKIP
>>> [r.error for r in result.failed]                                           # doctest: +SKIP
"""

from __future__ import annotations

from .jobs import BadJob, Job, JobSpecError, ResolvedJob, read_jobs, resolve_jobs
from .report import JobRecord, read_report
from .runner import ENGINES, BatchProgress, BatchResult, run

__all__ = [
    "ENGINES",
    "BadJob",
    "BatchProgress",
    "BatchResult",
    "Job",
    "JobRecord",
    "JobSpecError",
    "ResolvedJob",
    "read_jobs",
    "read_report",
    "resolve_jobs",
    "run",
]
