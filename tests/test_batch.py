"""talkinghead.batch: jobs files, per-job errors, the report, resume, local workers, a killed batch.

The Ray engine's tests are in test_batch_ray.py.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import soundfile as sf

from talkinghead.batch import Job, read_jobs, read_report, resolve_jobs, run
from talkinghead.batch.jobs import Defaults, ResolvedJob
from talkinghead.cli import main
from talkinghead.errors import ConfigError
from talkinghead.testing import tone_speech

pytest.importorskip("av")

TESTS = Path(__file__).resolve().parent
SRC = TESTS.parent / "src"
PLUGIN = "_batch_plugins:BatchTestPlugin"
FAST = {"tts": "fake", "animator": "fake"}
FAST_OPTIONS = {"animator": {"size": "64"}}


@pytest.fixture
def plugin():
    """The fakes plus the slow and crashy animators, registered in this process."""
    from talkinghead.plugins import reset

    reset()
    from talkinghead.batch.render import load_plugins

    load_plugins([PLUGIN])
    yield PLUGIN
    reset()


def write_wav(path: Path, words=("one", "two", "three")) -> Path:
    audio = tone_speech(list(words))
    sf.write(path, audio.samples, audio.sample_rate)
    return path


def twenty_jobs(folder: Path, portrait: Path) -> Path:
    """20 jobs: 14 texts, 4 audio files, 2 bad (a missing portrait; neither text nor audio)."""
    wav = write_wav(folder / "speech.wav")
    rows = []
    for i in range(20):
        row = {"id": f"j{i:02d}", "image": str(portrait), "output": f"out/j{i:02d}.mp4"}
        if i % 5 == 4:
            row["audio"] = "speech.wav"
        else:
            row["text"] = " ".join(["word"] * (2 + i % 4))
        if i % 3 == 0:
            row["animator.chunk_size"] = "4"
        rows.append(row)
    rows[7]["image"] = "no-such-portrait.png"
    del rows[13]["text"]
    path = folder / "jobs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert wav.exists()
    return path


def comparable(records):
    """What must not depend on the engine: everything but timings, worker and engine names."""
    return [
        (r.id, r.status, r.fingerprint, r.error, r.frames, r.duration, r.output_bytes, r.output_sha256) for r in records
    ]


# -- jobs files --------------------------------------------------------------------------------------------
def test_csv_rows_map_onto_stages_and_typed_options(plugin, tmp_path, portrait_path):
    (tmp_path / "jobs.csv").write_text(
        "id,image,text,output,fps,animator,animator.chunk_size,set\n"
        f"one,{portrait_path},hello there,a/one.mp4,12,fake,4,animator.size=64;tts.sample_rate=22050\n"
        f",{portrait_path},second,two.mp4,,,,\n"
    )
    jobs = read_jobs(tmp_path / "jobs.csv")
    assert [type(j) for j in jobs] == [Job, Job]
    assert jobs[0].output == str(tmp_path / "a" / "one.mp4") and jobs[1].id == "3"
    resolved = resolve_jobs(jobs, Defaults(stages={"tts": "fake", "animator": "slow"}))
    first, second = resolved
    assert isinstance(first, ResolvedJob) and isinstance(second, ResolvedJob)
    assert first.specs["animator"] == ("fake", {"chunk_size": 4, "size": 64})
    assert first.specs["tts"] == ("fake", {"sample_rate": 22050}) and first.fps == 12.0
    assert second.specs["animator"] == ("slow", {}) and second.fps == 20.0


def test_bad_rows_become_failed_jobs_not_a_failed_batch(plugin, tmp_path, portrait_path):
    (tmp_path / "jobs.jsonl").write_text(
        json.dumps({"image": str(portrait_path), "text": "fine", "output": "ok.mp4"}) + "\n"
        "{not json\n"
        + json.dumps({"image": str(portrait_path), "text": "x", "output": "o.mp4", "colour": "red"})
        + "\n"
        + json.dumps({"image": str(portrait_path), "text": "x", "output": "p.mp4", "animator.nope": 1})
        + "\n"
        + json.dumps({"image": str(portrait_path), "text": "x", "output": "ok.mp4"})
        + "\n"
        + json.dumps({"image": str(portrait_path), "text": "x", "output": str(portrait_path)})
        + "\n"
    )
    resolved = resolve_jobs(read_jobs(tmp_path / "jobs.jsonl"), Defaults(stages=FAST))
    kinds = [type(j).__name__ for j in resolved]
    assert kinds == ["ResolvedJob", "BadJob", "BadJob", "BadJob", "BadJob", "BadJob"]
    messages = [str(j.error) for j in resolved[1:]]
    assert "not valid JSON" in messages[0]
    assert "unknown column 'colour'" in messages[1]
    assert "has no option 'nope'" in messages[2]
    assert "also the output of job" in messages[3]
    assert "is an input of this batch" in messages[4]


@pytest.mark.parametrize(
    "content, message",
    [
        ("", "has no header row"),
        ("image,txt,output\n", "unknown column(s) 'txt'"),
        ("image,text,output\n", "has no jobs"),
    ],
)
def test_unusable_jobs_files_are_refused(tmp_path, content, message):
    path = tmp_path / "jobs.csv"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_jobs(path)
    with pytest.raises(ConfigError, match="not found"):
        read_jobs(tmp_path / "none.csv")
    (tmp_path / "jobs.txt").write_text("x")
    with pytest.raises(ConfigError, match="use a .csv or .jsonl"):
        read_jobs(tmp_path / "jobs.txt")


def test_fingerprint_covers_input_content_and_every_option(plugin, tmp_path, portrait_path):
    image = tmp_path / "p.png"
    image.write_bytes(portrait_path.read_bytes())
    base = {"image": str(image), "text": "hello there", "output": str(tmp_path / "o.mp4")}

    def fp(row=None, defaults=None):
        (job,) = resolve_jobs([{**base, **(row or {})}], defaults or Defaults(stages=FAST))
        assert isinstance(job, ResolvedJob), job
        return job.fingerprint

    first = fp()
    assert fp() == first
    assert fp({"id": "renamed"}) == first  # the id is a name, not an input
    changed = [
        fp({"text": "hello there!"}),
        fp({"fps": 25}),
        fp({"animator.chunk_size": 3}),
        fp({"tts.sample_rate": "22050"}),
        fp({"max_size": 512}),
        fp({"multiple_faces": "refuse"}),
        fp(defaults=Defaults(stages={"tts": "fake", "animator": "slow"})),
    ]
    assert len(set(changed)) == len(changed) and first not in changed
    image.write_bytes(image.read_bytes() + b"\0")  # same path, new content
    assert fp() != first


def test_jobs_file_cli_errors_exit_1(tmp_path):
    err = io.StringIO()
    assert main(["batch", str(tmp_path / "none.csv")], out=io.StringIO(), err=err) == 1
    assert "jobs file not found" in err.getvalue()


# -- running ------------------------------------------------------------------------------------------------
def test_resume_skips_a_finished_job(plugin, tmp_path, portrait_path):
    rows = [{"image": str(portrait_path), "text": "hi there", "output": str(tmp_path / "a.mp4")}]
    report = tmp_path / "r.jsonl"
    options = {"animator": {"size": "32"}}
    first = run(rows, report=report, stages=FAST, options=options)
    assert [r.status for r in first.records] == ["ok"]
    second = run(rows, report=report, stages=FAST, options=options)
    assert [r.status for r in second.records] == ["skipped"]
    assert second.records[0].output_sha256 == first.records[0].output_sha256


@pytest.mark.slow
def test_failing_jobs_are_reported_and_the_batch_goes_on_then_resume_skips_done_jobs(plugin, tmp_path, portrait_path):
    jobs = twenty_jobs(tmp_path, portrait_path)
    report = tmp_path / "report.jsonl"
    seen = []
    result = run(jobs, report=report, stages=FAST, options=FAST_OPTIONS, progress=seen.append)
    assert [r.id for r in result.records] == [f"j{i:02d}" for i in range(20)]
    failed = {r.id: r.error for r in result.failed}
    assert set(failed) == {"j07", "j13"}
    assert failed["j07"]["type"] == "ImageError" and "no-such-portrait.png" in failed["j07"]["message"]
    assert failed["j13"]["type"] == "JobSpecError"
    assert len(result.rendered) == 18 and all(Path(r.output).exists() for r in result.rendered)
    assert all(r.frames > 0 and r.output_sha256 and r.timings["total"] > 0 for r in result.rendered)
    assert seen[-1].jobs_done == 20 and seen[-1].failed == 2 and seen[-1].frames_done == result.frames
    assert any(p.running and 0 < p.frames_done < p.frames_total for p in seen), "frame progress inside a job"
    lines = [json.loads(x) for x in report.read_text().splitlines()]
    assert len(lines) == 20 and {x["status"] for x in lines} == {"ok", "error"}

    stamps = {r.output: os.stat(r.output).st_mtime_ns for r in result.rendered}
    again = run(jobs, report=report, stages=FAST, options=FAST_OPTIONS)
    assert len(again.skipped) == 18 and len(again.failed) == 2 and not again.rendered
    assert all(os.stat(p).st_mtime_ns == t for p, t in stamps.items())

    # a changed option re-renders that job only; a tampered or deleted output is rendered again
    text = jobs.read_text().replace('"id": "j01"', '"id": "j01", "fps": 10')
    jobs.write_text(text)
    Path(result.records[2].output).write_bytes(b"not the video")
    Path(result.records[3].output).unlink()
    third = run(jobs, report=report, stages=FAST, options=FAST_OPTIONS)
    assert sorted(r.id for r in third.rendered) == ["j01", "j02", "j03"]
    assert third.records[1].frames < result.records[1].frames  # 10 fps now
    forced = run(jobs, report=report, stages=FAST, options=FAST_OPTIONS, resume=False)
    assert len(forced.rendered) == 18


@pytest.mark.slow
def test_cli_batch_prints_summary_and_exit_code(plugin, tmp_path, portrait_path):
    jobs = twenty_jobs(tmp_path, portrait_path)
    out, err = io.StringIO(), io.StringIO()
    code = main(
        [
            "batch",
            str(jobs),
            "--tts",
            "fake",
            "--animator",
            "fake",
            "--set",
            "animator.size=64",
            "-q",
            "--plugin",
            PLUGIN,
        ],
        out=out,
        err=err,
    )
    assert code == 1, err.getvalue()  # two jobs failed
    text = out.getvalue()
    assert "20 jobs: 18 rendered, 0 already done, 2 failed" in text and "failed j07" in text
    assert (tmp_path / "jobs.report.jsonl").exists()


@pytest.mark.slow
def test_two_spawned_workers_match_one_in_process(plugin, tmp_path, portrait_path):
    jobs = twenty_jobs(tmp_path, portrait_path)
    one = run(jobs, report=tmp_path / "one.jsonl", stages=FAST, options=FAST_OPTIONS)
    for r in one.rendered:
        os.rename(r.output, r.output + ".one")
    two = run(jobs, report=tmp_path / "two.jsonl", stages=FAST, options=FAST_OPTIONS, workers=2, plugins=[PLUGIN])
    assert comparable(two.records) == comparable(one.records)
    assert {r.worker for r in two.rendered} == {"local-0", "local-1"}
    for r in two.rendered:
        assert Path(r.output).read_bytes() == Path(r.output + ".one").read_bytes()


@pytest.mark.slow
def test_a_worker_that_dies_fails_only_its_job(plugin, tmp_path, portrait_path):
    rows = [
        {"id": f"k{i}", "image": str(portrait_path), "text": "one two", "output": str(tmp_path / f"k{i}.mp4")}
        for i in range(5)
    ]
    rows[1]["animator.crash"] = True
    result = run(rows, stages={"tts": "fake", "animator": "crashy"}, workers=2, plugins=[PLUGIN])
    assert [r.status for r in result.records] == ["ok", "error", "ok", "ok", "ok"]
    error = result.records[1].error
    assert error["type"] == "WorkerCrashed" and "killed by signal 9" in error["message"]


def _python_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), str(TESTS), env.get("PYTHONPATH", "")])
    return env


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append(int(entry.name))
    return out


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("workers", [1, 2])
def test_sigkill_mid_batch_loses_at_most_the_jobs_in_flight(tmp_path, portrait_path, workers):
    rows = [
        {"id": f"s{i:02d}", "image": str(portrait_path), "text": "one two three four", "output": f"out/s{i:02d}.mp4"}
        for i in range(12)
    ]
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = tmp_path / "jobs.report.jsonl"
    cmd = [
        sys.executable,
        "-m",
        "talkinghead.cli",
        "batch",
        str(jobs),
        "-q",
        "--plugin",
        PLUGIN,
        "--tts",
        "fake",
        "--animator",
        "slow",
        "--set",
        "animator.delay=0.08",
        "--workers",
        str(workers),
    ]
    proc = subprocess.Popen(cmd, env=_python_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            lines = report.read_text().splitlines() if report.exists() else []
            if sum('"ok"' in x for x in lines) >= 3:
                break
            time.sleep(0.05)
        assert proc.poll() is None, f"the batch ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
        worker_pids = _children(proc.pid)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    finished = read_report(report)
    assert 3 <= len(finished) < 12
    stamps = {out: (os.stat(out).st_ino, os.stat(out).st_mtime_ns) for out in finished}
    # the workers die with the driver (no orphans rendering on)
    limit = time.monotonic() + 20
    while time.monotonic() < limit and any(Path(f"/proc/{p}").exists() for p in worker_pids):
        time.sleep(0.1)
    alive = [
        p for p in worker_pids if Path(f"/proc/{p}/stat").exists() and " Z " not in Path(f"/proc/{p}/stat").read_text()
    ]
    assert not alive, f"worker processes outlived the killed batch: {alive}"

    resumed = subprocess.run(cmd, env=_python_env(), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"{len(finished)} already done" in resumed.stdout
    records = [json.loads(x) for x in report.read_text().splitlines() if x.strip().endswith("}")]
    last = {}
    for r in records:
        last[r["id"]] = r
    assert all(r["status"] in ("ok", "skipped") for r in last.values()) and len(last) == 12
    for out, stamp in stamps.items():
        assert (os.stat(out).st_ino, os.stat(out).st_mtime_ns) == stamp, f"{out} was rendered again"
        assert last[Path(out).stem]["status"] == "skipped"
