"""The Ray engine on a local Ray cluster bound to 127.0.0.1: the same outputs and report as locally.

Ray runs in a child process so that nothing Ray starts outlives the test, and so that Ray's own
switch for a loopback-only node (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``: the node address becomes
127.0.0.1 and every Ray server binds to it) is set for that process alone. The child records every
listening socket of its process tree while the actors render, and which of its processes are still
alive after the batch; the test checks both.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_batch import FAST, FAST_OPTIONS, PLUGIN, SRC, TESTS, comparable, twenty_jobs  # noqa: E402

from talkinghead.batch import run  # noqa: E402
from talkinghead.batch.report import iter_records  # noqa: E402

pytest.importorskip("ray")
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")]

CHILD = r"""
import json, os, sys, time
from pathlib import Path

def descendants(root):
    kids = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if stat[0] != "Z":
                kids.setdefault(int(stat[1]), []).append(int(entry.name))
    out, todo = [], [root]
    while todo:
        for kid in kids.get(todo.pop(), []):
            out.append(kid)
            todo.append(kid)
    return out

def listening(pids):
    table = {}
    for name in ("tcp", "tcp6"):
        for line in Path(f"/proc/net/{name}").read_text().splitlines()[1:]:
            f = line.split()
            if f[3] == "0A":
                table[f[9]] = f[1].split(":")[0]
    found = []
    for pid in pids:
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                link = os.readlink(fd)
            except OSError:
                continue
            if link.startswith("socket:[") and link[8:-1] in table:
                found.append(table[link[8:-1]])
    return found

jobs, report, snapshot, plugin = sys.argv[1:5]
snap = {"sockets": None}

def progress(p):
    if snap["sockets"] is None and p.frames_done > 0:
        snap["sockets"] = listening([os.getpid()] + descendants(os.getpid()))

from talkinghead.batch import run
result = run(
    jobs, report=report, engine="ray", workers=2, plugins=[plugin], progress=progress,
    ray_init={"num_cpus": 2, "object_store_memory": 128 * 2**20},
    stages={"tts": "fake", "animator": "fake"}, options={"animator": {"size": "64"}},
)
deadline = time.monotonic() + 60
while descendants(os.getpid()) and time.monotonic() < deadline:
    time.sleep(0.5)
snap["left_running"] = descendants(os.getpid())
snap["workers"] = sorted({r.worker for r in result.rendered})
Path(snapshot).write_text(json.dumps(snap))
"""

LOOPBACK = {"0100007F", "0000000000000000FFFF00000100007F", "00000000000000000000000001000000"}


def test_twenty_jobs_on_local_ray_cluster_match_the_local_engine(tmp_path, portrait_path, fakes):
    from talkinghead.batch.render import load_plugins

    load_plugins([PLUGIN])
    jobs = twenty_jobs(tmp_path, portrait_path)
    local = run(jobs, report=tmp_path / "local.jsonl", stages=FAST, options=FAST_OPTIONS)
    for r in local.rendered:
        os.rename(r.output, r.output + ".local")

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), str(TESTS), env.get("PYTHONPATH", "")])
    env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # Ray's loopback-only node
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    snapshot, report = tmp_path / "snapshot.json", tmp_path / "ray.jsonl"
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(jobs), str(report), str(snapshot), PLUGIN],
        env=env,
        capture_output=True,
        text=True,
        timeout=420,
    )
    assert child.returncode == 0, child.stderr[-3000:]
    snap = json.loads(snapshot.read_text())

    ray_records = list(iter_records(report))
    by_id = {r.id: r for r in ray_records}
    assert comparable([by_id[r.id] for r in local.records]) == comparable(local.records)
    assert {r.engine for r in ray_records} == {"ray"} and snap["workers"] == ["ray-0", "ray-1"]
    for r in local.rendered:
        assert Path(r.output).read_bytes() == Path(r.output + ".local").read_bytes()

    assert snap["sockets"], "no listening socket seen while Ray ran"
    assert set(snap["sockets"]) <= LOOPBACK, f"Ray listened beyond loopback: {snap['sockets']}"
    assert snap["left_running"] == [], "Ray processes outlived the batch"

    # resume on Ray: nothing finished is rendered again
    again = subprocess.run(
        [sys.executable, "-c", CHILD, str(jobs), str(report), str(tmp_path / "snap2.json"), PLUGIN],
        env=env,
        capture_output=True,
        text=True,
        timeout=420,
    )
    assert again.returncode == 0, again.stderr[-3000:]
    second = list(iter_records(report))[len(ray_records) :]
    assert sorted(r.status for r in second) == ["error"] * 2 + ["skipped"] * 18


def test_ray_engine_without_ray_names_the_extra(monkeypatch, tmp_path):
    import builtins

    from talkinghead.errors import MissingDependencyError

    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray" or name.startswith("ray."):
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    monkeypatch.delitem(sys.modules, "ray", raising=False)
    from talkinghead.batch.ray_engine import import_ray

    with pytest.raises(MissingDependencyError, match=r"talkinghead\[ray\]"):
        import_ray()
