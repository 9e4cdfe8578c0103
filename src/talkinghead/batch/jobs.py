"""Batch jobs: reading job files (CSV or JSONL), resolving options, and each job's fingerprint.

A job is one video: a portrait, a text or an audio file, an output path and any per-job options.
Options map onto the :class:`~talkinghead.Avatar`: the stage backends (``tts``, ``animator``,
``enhancer``, ``writer``), ``fps``, ``multiple_faces``, ``max_size``, ``voice``, and backend options
written as ``--set``-style ``stage.key`` columns (or a ``set`` column of ``stage.key=value`` pairs
separated by ``;``). Text values are converted to the types the backend's constructor declares.

The fingerprint of a job is a SHA-256 over the content of its inputs (portrait bytes, audio bytes
or text) and every option after resolution; a re-run skips a job whose output still matches it.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import BadInputError, ConfigError, ImageError, TalkingHeadError, TextError
from ..options import convert_value, parse_settings

__all__ = [
    "FINGERPRINT_VERSION",
    "BadJob",
    "Defaults",
    "Job",
    "JobSpecError",
    "ResolvedJob",
    "fingerprint_of",
    "read_jobs",
    "resolve_jobs",
]

#: Bumped when the meaning of a fingerprint changes, so old reports no longer match.
FINGERPRINT_VERSION = 1

#: Stages a job may choose (conversation stages have no meaning in a batch render).
RENDER_STAGES = ("tts", "animator", "enhancer", "writer")

#: Columns with a fixed meaning; any other column must be ``stage.option``.
COLUMNS = ("id", "image", "text", "audio", "output", "fps", "multiple_faces", "max_size", "voice", "set", "options")

#: Largest jobs file accepted (a batch of a million rows is still far below it).
MAX_JOBS_FILE_BYTES = 256 * 1024 * 1024


class JobSpecError(BadInputError):
    """A job's row cannot be used (missing column, bad value, unknown option)."""


@dataclass(frozen=True)
class Job:
    """One video to make, as written in a jobs file or passed to :func:`talkinghead.batch.run`.

    Args:
        output: path of the video to write.
        image: path of the portrait.
        text: what to say (give ``text`` or ``audio``).
        audio: path of speech audio to speak.
        id: a name for the job in the report (default: its line number).
        stages: backend per stage, e.g. ``{"animator": "viseme"}``.
        options: backend options per stage, e.g. ``{"tts": {"length_scale": "1.2"}}``; strings are
            converted to the option's declared type.
        fps, multiple_faces, max_size: as for :class:`~talkinghead.Avatar`.
        voice: voice of the TTS (a backend voice id).
        line: where the job came from (line of the jobs file; 1-based).
    """

    output: str | os.PathLike
    image: str | os.PathLike | None = None
    text: str | None = None
    audio: str | os.PathLike | None = None
    id: str = ""
    stages: Mapping[str, str] = field(default_factory=dict)
    options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    fps: float | None = None
    multiple_faces: str | None = None
    max_size: int | None = None
    voice: str | None = None
    line: int = 0

    @classmethod
    def from_row(cls, row: Mapping[str, Any], *, line: int = 0, base: Path | None = None) -> Job:
        """Build a job from one CSV/JSONL row (column name → value); relative paths are taken from ``base``.

        Raises:
            JobSpecError: a missing or unknown column, or a value of the wrong kind.
        """
        row = {str(k).strip(): v for k, v in row.items() if k is not None and not _blank(v)}
        stages: dict[str, str] = {}
        options: dict[str, dict[str, Any]] = {}
        for key, value in row.items():
            if key in RENDER_STAGES:
                stages[key] = _text(value, key)
            elif key in COLUMNS:
                continue
            elif "." in key:
                stage, _, name = key.rpartition(".")
                if stage not in RENDER_STAGES:
                    raise JobSpecError(
                        f"column {key!r}: unknown stage {stage!r}; use one of {', '.join(RENDER_STAGES)}"
                    )
                options.setdefault(stage, {})[name] = value
            else:
                raise JobSpecError(
                    f"unknown column {key!r}; columns are {', '.join(COLUMNS + RENDER_STAGES)} "
                    "and stage.option (e.g. tts.length_scale)"
                )
        if "set" in row:
            items = row["set"] if isinstance(row["set"], list) else [s for s in _text(row["set"], "set").split(";")]
            try:
                parsed = parse_settings([str(s).strip() for s in items if str(s).strip()])
            except ConfigError as exc:
                raise JobSpecError(str(exc)) from None
            if parsed.get(""):
                raise JobSpecError("the set column takes stage.key=value pairs (e.g. tts.length_scale=1.2)")
            for stage, values in parsed.items():
                if stage not in RENDER_STAGES:
                    raise JobSpecError(f"set {stage}.…: a batch job can only set {', '.join(RENDER_STAGES)} options")
                options.setdefault(stage, {}).update(values)
        if "options" in row:
            extra = row["options"]
            if not isinstance(extra, Mapping):
                raise JobSpecError('"options" must be an object such as {"tts": {"length_scale": 1.2}}')
            for stage, values in extra.items():
                if stage not in RENDER_STAGES or not isinstance(values, Mapping):
                    raise JobSpecError(f'"options" must map a stage ({", ".join(RENDER_STAGES)}) to an object')
                options.setdefault(stage, {}).update(values)

        def path(key: str) -> str | None:
            if key not in row:
                return None
            p = Path(os.path.expanduser(_text(row[key], key)))
            return os.fspath(p if p.is_absolute() or base is None else base / p)

        if "output" not in row:
            raise JobSpecError("the job has no output; every job needs an output column (the video to write)")
        return cls(
            output=path("output"),
            image=path("image"),
            text=_text(row["text"], "text") if "text" in row else None,
            audio=path("audio"),
            id=_text(row.get("id", ""), "id") or (str(line) if line else ""),
            stages=stages,
            options=options,
            fps=_number(row.get("fps"), "fps", float),
            multiple_faces=_text(row["multiple_faces"], "multiple_faces") if "multiple_faces" in row else None,
            max_size=_number(row.get("max_size"), "max_size", int),
            voice=_text(row["voice"], "voice") if "voice" in row else None,
            line=line,
        )


@dataclass(frozen=True)
class ResolvedJob:
    """A job ready to render: absolute paths, backends chosen, typed options, fingerprint.

    Plain data (it travels to worker processes and Ray actors).
    """

    index: int
    id: str
    line: int
    output: str
    image: str
    text: str | None
    audio: str | None
    specs: dict[str, tuple[str, dict[str, Any]]]
    fps: float
    multiple_faces: str
    max_size: int
    voice: str | None
    fingerprint: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def bad(self, error: TalkingHeadError) -> BadJob:
        """This job, failed before it ran."""
        return BadJob(self.index, self.id, self.line, self.output, error)


@dataclass(frozen=True)
class BadJob:
    """A row that could not become a job; it is reported as failed without stopping the batch."""

    index: int
    id: str
    line: int
    output: str | None
    error: TalkingHeadError


def read_jobs(path: str | os.PathLike) -> list[Job | BadJob]:
    """Read a jobs file: ``.csv`` (a header row, then one job per row) or ``.jsonl`` (one object per line).

    Relative paths inside it are relative to the file's folder. A row that cannot be read becomes a
    :class:`BadJob` (reported as failed) instead of stopping the batch.

    Raises:
        ConfigError: the file is missing, empty, not CSV/JSONL, or its header names unknown columns.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"jobs file not found: {path}. Give a .csv or .jsonl file with one job per row")
    if path.stat().st_size > MAX_JOBS_FILE_BYTES:
        raise ConfigError(f"jobs file {path} is over {MAX_JOBS_FILE_BYTES // 2**20} MiB; split it")
    try:
        data = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"jobs file {path} is not UTF-8 text ({exc.reason}); save it as UTF-8") from None
    base = path.resolve().parent
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        jobs = _read_jsonl(data, base)
    elif suffix in (".csv", ".tsv"):
        jobs = _read_csv(data, base, delimiter="\t" if suffix == ".tsv" else ",", name=str(path))
    else:
        raise ConfigError(f"jobs file {path}: use a .csv or .jsonl file (got {suffix or 'no extension'})")
    if not jobs:
        raise ConfigError(f"jobs file {path} has no jobs")
    return jobs


def _read_jsonl(data: str, base: Path) -> list[Job | BadJob]:
    jobs: list[Job | BadJob] = []
    for n, text in enumerate(data.splitlines(), start=1):
        if not text.strip() or text.lstrip().startswith("#"):
            continue
        index = len(jobs)
        try:
            row = json.loads(text)
        except json.JSONDecodeError as exc:
            jobs.append(BadJob(index, str(n), n, None, JobSpecError(f"line {n} is not valid JSON: {exc.msg}")))
            continue
        if not isinstance(row, dict):
            jobs.append(BadJob(index, str(n), n, None, JobSpecError(f"line {n} must be a JSON object")))
            continue
        jobs.append(_job_or_bad(row, index, n, base))
    return jobs


def _read_csv(data: str, base: Path, *, delimiter: str, name: str) -> list[Job | BadJob]:
    reader = csv.DictReader(io.StringIO(data, newline=""), delimiter=delimiter)
    header = [h.strip() for h in (reader.fieldnames or []) if h is not None]
    if not header:
        raise ConfigError(f"jobs file {name} has no header row; the first row names the columns (image,text,output,…)")
    unknown = [h for h in header if h and h not in COLUMNS + RENDER_STAGES and "." not in h]
    if unknown:
        raise ConfigError(
            f"jobs file {name}: unknown column(s) {', '.join(map(repr, unknown))}; columns are "
            f"{', '.join(COLUMNS + RENDER_STAGES)} and stage.option (e.g. tts.length_scale)"
        )
    jobs: list[Job | BadJob] = []
    for row in reader:
        line = reader.line_num
        if not any((v or "").strip() for k, v in row.items() if k is not None):
            continue
        if None in row:  # more cells than header columns
            jobs.append(
                BadJob(len(jobs), str(line), line, None, JobSpecError(f"line {line} has more cells than the header"))
            )
            continue
        jobs.append(_job_or_bad(row, len(jobs), line, base))
    return jobs


def _job_or_bad(row: Mapping[str, Any], index: int, line: int, base: Path) -> Job | BadJob:
    try:
        return Job.from_row(row, line=line, base=base)
    except TalkingHeadError as exc:
        output = row.get("output")
        out = os.fspath(base / str(output)) if isinstance(output, str) and output.strip() else None
        return BadJob(index, str(row.get("id") or line), line, out, exc)


# -- resolution ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Defaults:
    """What every job gets unless its row says otherwise (from the command line or ``run()``)."""

    stages: Mapping[str, str] = field(default_factory=dict)
    options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    fps: float = 20.0
    multiple_faces: str = "largest"
    max_size: int = 1024
    voice: str | None = None


def resolve_jobs(jobs: Sequence[Job | BadJob | Mapping[str, Any]], defaults: Defaults) -> list[ResolvedJob | BadJob]:
    """Check every job, choose its backends, type its options and compute its fingerprint.

    A job that cannot be resolved becomes a :class:`BadJob`; outputs used by two jobs, or that are an
    input of any job, make the later job bad (nothing is ever written over an input).
    """
    from ..avatar import _default_animator

    default_animator: str | None = None
    out: list[ResolvedJob | BadJob] = []
    inputs: set[str] = set()
    for i, job in enumerate(jobs):
        if isinstance(job, Mapping):
            try:
                job = Job.from_row(job, line=i + 1)
            except TalkingHeadError as exc:
                out.append(BadJob(i, str(i + 1), i + 1, None, exc))
                continue
        if isinstance(job, BadJob):
            out.append(BadJob(i, job.id, job.line, job.output, job.error))
            continue
        for p in (job.image, job.audio):
            if p:
                inputs.add(_real(p))
        try:
            if "animator" not in job.stages and "animator" not in defaults.stages and default_animator is None:
                default_animator = _default_animator()
            out.append(_resolve(i, job, defaults, default_animator))
        except TalkingHeadError as exc:
            out.append(BadJob(i, job.id or str(i + 1), job.line, os.fspath(job.output) if job.output else None, exc))
    seen: dict[str, str] = {}
    for k, job in enumerate(out):
        if isinstance(job, BadJob) or job.output is None:
            continue
        real = _real(job.output)
        if real in inputs:
            out[k] = job.bad(
                JobSpecError(
                    f"output {job.output} is an input of this batch; choose another output path "
                    "(inputs are never overwritten)"
                )
            )
        elif real in seen:
            out[k] = job.bad(
                JobSpecError(f"output {job.output} is also the output of job {seen[real]!r}; give every job its own")
            )
        else:
            seen[real] = job.id
    return out


def _resolve(index: int, job: Job, defaults: Defaults, default_animator: str | None) -> ResolvedJob:
    from ..avatar import check_text

    if not job.image:
        raise JobSpecError("the job has no image; give the portrait in the image column")
    if (job.text is None) == (job.audio is None):
        raise JobSpecError("give either text or audio for each job (not both, not neither)")
    if not job.output:
        raise JobSpecError("the job has no output")
    text = check_text(job.text) if job.text is not None else None
    if text is not None and not text.strip():
        raise TextError("the text is empty; give something to say")
    stages = {**defaults.stages, **job.stages}
    stages.setdefault("tts", "piper")
    stages.setdefault("writer", "mp4")
    if "animator" not in stages:
        stages["animator"] = default_animator or "viseme"
    if job.audio is not None:
        stages.pop("tts", None)  # spoken audio needs no TTS; its options would not matter
    specs: dict[str, tuple[str, dict[str, Any]]] = {}
    for stage in RENDER_STAGES:
        name = stages.get(stage)
        raw = {**defaults.options.get(stage, {}), **job.options.get(stage, {})}
        if name is None:
            if raw:
                raise JobSpecError(f"options for {stage} were given but no {stage} backend; add a {stage} column")
            continue
        specs[stage] = (name, _typed(stage, name, raw))
    fps = float(job.fps if job.fps is not None else defaults.fps)
    if not 1 <= fps <= 60:
        raise JobSpecError(f"fps must be between 1 and 60, got {fps:g}")
    multiple = job.multiple_faces or defaults.multiple_faces
    if multiple not in ("largest", "refuse"):
        raise JobSpecError(f"multiple_faces must be 'largest' or 'refuse', got {multiple!r}")
    max_size = int(job.max_size if job.max_size is not None else defaults.max_size)
    voice = job.voice if job.voice is not None else defaults.voice
    image = os.path.abspath(job.image)
    audio = os.path.abspath(job.audio) if job.audio is not None else None
    fingerprint = fingerprint_of(
        image=_content_hash(image, ImageError, "portrait"),
        speech={"text": text} if text is not None else {"audio": _content_hash(audio, BadInputError, "audio")},
        specs=specs,
        fps=fps,
        multiple_faces=multiple,
        max_size=max_size,
        voice=voice if "tts" in specs else None,
    )
    return ResolvedJob(
        index=index,
        id=job.id or str(index + 1),
        line=job.line or index + 1,
        output=os.path.abspath(job.output),
        image=image,
        text=text,
        audio=audio,
        specs=specs,
        fps=fps,
        multiple_faces=multiple,
        max_size=max_size,
        voice=voice if "tts" in specs else None,
        fingerprint=fingerprint,
    )


def fingerprint_of(**parts: Any) -> str:
    """SHA-256 of the canonical JSON of ``parts`` (input hashes and resolved options)."""
    payload = json.dumps({"v": FINGERPRINT_VERSION, **parts}, sort_keys=True, default=repr, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()


def _typed(stage: str, name: str, raw: Mapping[str, Any]) -> dict[str, Any]:
    """Options as the backend's constructor types them (strings converted; typed JSON values kept)."""
    import typing

    from ..plugins import config_options, get_registry

    params = config_options(stage, name)  # raises BackendNotFoundError for an unknown backend
    cls = get_registry().get(stage, name).cls
    try:
        hints = typing.get_type_hints(cls.__init__)
    except Exception:  # unresolvable annotations: keep values as given
        hints = {}
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if params and key not in params:
            raise JobSpecError(
                f"{stage} backend {name!r} has no option {key!r}; options: {', '.join(params) or 'none'}"
            )
        out[key] = convert_value(value, hints.get(key, Any), f"{stage}.{key}") if isinstance(value, str) else value
    return out


def _content_hash(path: str, error: type[TalkingHeadError], what: str) -> str:
    p = Path(path)
    if not p.is_file():
        raise error(f"{what} file not found: {p}. Check the path in the jobs file")
    digest = hashlib.sha256()
    try:
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        raise error(f"cannot read {what} file {p}: {exc.strerror or exc}") from exc
    return digest.hexdigest()


def _real(path: str | os.PathLike) -> str:
    return os.path.realpath(os.path.abspath(os.fspath(path)))


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _text(value: Any, key: str) -> str:
    if isinstance(value, (dict, list)):
        raise JobSpecError(f"{key} must be a single value, got {type(value).__name__}")
    return str(value).strip() if key != "text" else str(value)


def _number(value: Any, key: str, kind: type) -> Any:
    if _blank(value):
        return None
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise JobSpecError(f"{key} must be a number, got {value!r}") from None
