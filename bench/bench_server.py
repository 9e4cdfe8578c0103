"""N concurrent render jobs through the HTTP server, on the offline stack (piper, viseme, mp4).

For each number of job workers it starts the app on 127.0.0.1 (real uvicorn, real HTTP), renders
one warm-up video (models load, the portrait is prepared), then submits N jobs at once from N
client threads and polls them to the end. It reports throughput (jobs per minute, seconds of video
per second of wall time), per-job latency from submit to completed (p50, p95), and the server
process's resident memory after the warm-up and at its peak during the burst (sampled every
50 ms). Each worker count runs in a fresh process, one after the other in one run, so their ratio
holds on a noisy machine.

    PYTHONPATH=src python bench/bench_server.py [--jobs 8] [--workers 1,2] [--cores 2] [--quick]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEXT = ("Hello, and welcome. This short message was rendered by the talkinghead server, "
        "one of several videos made at the same time.")


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


class PeakMemory:
    """Samples this process's resident memory in a thread; ``peak`` in MB."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval, self.peak = interval, rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, rss_mb())

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.peak = max(self.peak, rss_mb())


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def run(workers: int, jobs: int, text: str, fps: float, image: bytes) -> dict:
    import httpx

    from talkinghead.server import ServerSettings, create_app
    from talkinghead.testing.app_server import AppServer

    with tempfile.TemporaryDirectory() as data:
        settings = ServerSettings(data_dir=data, job_workers=workers, max_queued=max(16, jobs + 1),
                                  rate_limit=10_000, rate_burst=10_000,
                                  stages={"tts": "piper", "animator": "viseme", "writer": "mp4", "llm": None})
        with AppServer(create_app(settings)) as server, httpx.Client(base_url=server.url, timeout=600) as client:

            def submit_and_wait() -> tuple[float, float]:
                t0 = time.perf_counter()
                r = client.post("/v1/videos", files={"image": ("p.png", image, "image/png")},
                                data={"text": text, "fps": str(fps)})
                r.raise_for_status()
                jid = r.json()["id"]
                while True:
                    job = client.get(f"/v1/videos/{jid}").json()
                    if job["status"] not in ("queued", "in_progress"):
                        break
                    time.sleep(0.1)
                if job["status"] != "completed":
                    raise RuntimeError(f"job {jid} {job['status']}: {job.get('error')}")
                return time.perf_counter() - t0, job["result"]["duration"]

            submit_and_wait()  # warm-up: models load, the portrait is prepared and cached
            base = rss_mb()
            with PeakMemory() as mem, ThreadPoolExecutor(jobs) as pool:
                t0 = time.perf_counter()
                results = list(pool.map(lambda _: submit_and_wait(), range(jobs)))
                wall = time.perf_counter() - t0
    latencies = [r[0] for r in results]
    video_s = sum(r[1] for r in results)
    return {
        "workers": workers, "jobs": jobs, "wall": wall, "per_min": 60 * jobs / wall, "rtf": video_s / wall,
        "video_s": video_s / jobs, "p50": statistics.median(latencies), "p95": percentile(latencies, 0.95),
        "base_mb": base, "peak_mb": mem.peak,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--jobs", type=int, default=8, help="jobs submitted at once (default 8)")
    p.add_argument("--workers", default="1,2", help="job worker counts to compare (default 1,2)")
    p.add_argument("--cores", type=int, default=2, help="pin the process to this many CPU cores (default 2)")
    p.add_argument("--fps", type=float, default=20)
    p.add_argument("--image", default=str(ROOT / "assets" / "portrait_astronaut.png"))
    p.add_argument("--quick", action="store_true", help="3 jobs of one short sentence (a smoke run)")
    args = p.parse_args(argv)
    if args.cores and hasattr(os, "sched_setaffinity"):
        available = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, set(available[: args.cores]))
    text = "Hello from the server benchmark." if args.quick else TEXT
    jobs = 3 if args.quick else args.jobs
    image = Path(args.image).read_bytes()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"{jobs} concurrent render jobs (piper + viseme + mp4, {args.fps:g} fps) on {cores} cores; "
          f"text of {len(text)} characters")
    print("| job workers | jobs | wall s | jobs/min | video s / wall s | video s / job | p50 latency s | "
          "p95 latency s | RSS before MB | peak RSS MB |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    spawn = multiprocessing.get_context("spawn")
    for workers in [int(w) for w in args.workers.split(",") if w.strip()]:
        with spawn.Pool(1) as child:  # a fresh process per configuration: memory figures do not mix
            r = child.apply(run, (workers, jobs, text, args.fps, image))
        print(f"| {r['workers']} | {r['jobs']} | {r['wall']:.1f} | {r['per_min']:.1f} | {r['rtf']:.2f} | "
              f"{r['video_s']:.1f} | {r['p50']:.1f} | {r['p95']:.1f} | {r['base_mb']:.0f} | {r['peak_mb']:.0f} |",
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
