"""The server on Ray Serve: two replicas, one shared store; jobs spread over replicas and any replica
answers for any job.

Ray Serve's replicas open an inter-deployment gRPC port on every interface (``[::]``), whatever the
node address, so the whole cluster runs inside a fresh network namespace that has only the loopback
interface (``unshare -n``; root only). Nothing can be reached from outside it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("ray.serve")
pytest.importorskip("fastapi")
pytest.importorskip("httpx")
pytest.importorskip("av")

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not sys.platform.startswith("linux"), reason="network namespace")]

TESTS = Path(__file__).resolve().parent
SRC = TESTS.parent / "src"

CHILD = r"""
import json, sys, time
import httpx, numpy as np, ray
from ray import serve
from server_helpers import fake_settings, png_bytes
from talkinghead.server.ray_serve import deployment

tmp, port, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ray.init(address="local", num_cpus=3, include_dashboard=False, log_to_driver=False,
         object_store_memory=128 * 2**20)
serve.start(http_options={"host": "127.0.0.1", "port": port})
from pathlib import Path
settings = fake_settings(Path(tmp))
serve.run(deployment(settings, num_replicas=2, num_cpus=0.5, plugins=["talkinghead.testing:FakesPlugin"]),
          route_prefix="/", name="talkinghead")
rng = np.random.default_rng(0)
img = np.full((160, 128, 3), 180, np.uint8) + rng.integers(0, 20, (160, 128, 3), dtype=np.uint8)
portrait = png_bytes(img)
result = {"created": {}, "polled": {}, "downloads": {}}
with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
    ids = []
    for i in range(6):
        r = client.post("/v1/videos", files={"image": ("p.png", portrait, "image/png")},
                        data={"text": f"hello number {i}", "fps": "10"})
        assert r.status_code == 202, r.text
        ids.append(r.json()["id"])
        result["created"][ids[-1]] = r.headers["x-talkinghead-replica"]
    deadline = time.monotonic() + 240
    pending = set(ids)
    while pending and time.monotonic() < deadline:
        for jid in sorted(pending):
            r = client.get(f"/v1/videos/{jid}")
            result["polled"].setdefault(jid, []).append(r.headers["x-talkinghead-replica"])
            if r.json()["status"] not in ("queued", "in_progress"):
                pending.discard(jid)
                result.setdefault("status", {})[jid] = r.json()["status"]
        time.sleep(0.2)
    for jid in ids:
        r = client.get(f"/v1/videos/{jid}/content")
        result["downloads"][jid] = [r.status_code, r.content[4:8].decode("latin-1"), r.headers["x-talkinghead-replica"]]
# concurrent read-modify-writes through the shared store never lose an update
import threading
from talkinghead.server.ray_serve import RayStore
from talkinghead.server.store import new_id
store = RayStore(Path(tmp) / "cas", actor_name="talkinghead-store-cas")
rid = new_id("job")
store.put("job", rid, {"n": 0})
def bump(record):
    record["n"] += 1
threads = [threading.Thread(target=lambda: [store.update("job", rid, bump) for _ in range(25)]) for _ in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
result["counter"] = store.get("job", rid)["n"]
Path(out).write_text(json.dumps(result))
serve.shutdown()
ray.shutdown()
"""


def test_jobs_spread_over_two_replicas_and_any_replica_answers(tmp_path):
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("ip"):
        pytest.skip("needs root, unshare and ip for a private network namespace")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), str(TESTS), env.get("PYTHONPATH", "")])
    env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    out = tmp_path / "result.json"
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    inner = f"ip link set lo up && exec {sys.executable} {script} {tmp_path} 18765 {out}"
    proc = subprocess.run(["unshare", "-n", "sh", "-c", inner], env=env, capture_output=True, text=True, timeout=480)
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(out.read_text())
    assert set(result["status"].values()) == {"completed"}, result["status"]
    assert all(code == 200 and magic == "ftyp" for code, magic, _ in result["downloads"].values())
    replicas = set(result["created"].values()) | {r for rs in result["polled"].values() for r in rs}
    assert len(replicas) == 2, replicas  # Serve used both replicas
    # a job accepted by one replica was reported on, or downloaded from, the other: the shared store
    crossed = [
        jid for jid, made in result["created"].items()
        if any(r != made for r in result["polled"][jid]) or result["downloads"][jid][2] != made
    ]  # fmt: skip
    assert crossed, result
    assert result["counter"] == 100
