"""Batch throughput: one worker, N local workers and Ray actors on the same jobs, in one run.

Run: ``PYTHONPATH=src python bench/bench_batch.py`` (default: 12 jobs of piper speech + the viseme
animator at 512 px + mp4, configurations ``local:1 local:2 ray:2``). Small check:
``python bench/bench_batch.py --jobs 4 --tts fake --size 256``.

Each configuration runs in a fresh process (models load inside the timing, as for a user's batch),
on a fresh copy of the jobs, and prints one row: wall time, jobs/s, frames/s, seconds of video per
second, and the speed-up over the first configuration. A local Ray instance is started for the Ray
rows, bound to 127.0.0.1 (Ray's ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` switch, set for that process
only). The machine is noisy: compare ratios from one run, not absolute numbers between runs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PORTRAIT = ROOT / "assets" / "portrait_astronaut.png"
SENTENCES = [
    "Welcome to the first lesson of this course.",
    "Today we look at how the planets move around the sun.",
    "Each orbit is an ellipse, with the sun at one focus.",
    "The closer a planet is, the faster it travels.",
    "Let us see what that means for a year on Mars.",
    "Thank you for watching, and see you next time.",
]


def write_jobs(folder: Path, n: int, size: int) -> Path:
    rows = [
        {
            "id": f"b{i:03d}",
            "image": str(PORTRAIT),
            "text": SENTENCES[i % len(SENTENCES)],
            "output": f"out/b{i:03d}.mp4",
            "max_size": size,
        }
        for i in range(n)
    ]
    path = folder / "jobs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def one(args: argparse.Namespace) -> None:
    """Child: run one configuration and print its result as JSON."""
    from talkinghead.batch import run

    engine, workers = args.one.split(":")
    stages = {"tts": args.tts, "animator": "viseme", "writer": "mp4"}
    plugins = ["talkinghead.testing:FakesPlugin"] if args.tts == "fake" else []
    t0 = time.perf_counter()
    result = run(
        args.jobs_file,
        engine=engine,
        workers=int(workers),
        stages=stages,
        plugins=plugins,
        resume=False,
        ray_init={"num_cpus": max(int(workers), 1)} if engine == "ray" else None,
    )
    wall = time.perf_counter() - t0
    setup = max((r.timings.get("setup", 0.0) for r in result.rendered), default=0.0)
    print(
        json.dumps(
            {
                "config": args.one,
                "wall": wall,
                "jobs": len(result.rendered),
                "failed": len(result.failed),
                "frames": result.frames,
                "video_s": sum(r.duration for r in result.rendered),
                "first_setup": setup,
            }
        )
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--jobs", type=int, default=12, help="number of jobs (default 12)")
    p.add_argument("--size", type=int, default=512, help="portrait size in pixels (default 512)")
    p.add_argument("--tts", choices=("piper", "fake"), default="piper", help="TTS backend (default piper)")
    p.add_argument("--configs", nargs="+", default=["local:1", "local:2", "ray:2"], help="ENGINE:WORKERS …")
    p.add_argument("--one", help=argparse.SUPPRESS)
    p.add_argument("--jobs-file", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        one(args)
        return 0
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    print(f"{args.jobs} jobs, tts={args.tts}, viseme animator at {args.size} px, mp4; cpu count {os.cpu_count()}")
    print("| configuration | wall s | jobs/s | frames/s | video s per s | speed-up | first job setup s |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    base = None
    for config in args.configs:
        with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
            jobs = write_jobs(Path(tmp), args.jobs, args.size)
            child_env = dict(env)
            if config.startswith("ray"):
                child_env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # a loopback-only local Ray node
                child_env["RAY_USAGE_STATS_ENABLED"] = "0"
            cmd = [sys.executable, __file__, "--one", config, "--jobs-file", str(jobs), "--tts", args.tts]
            proc = subprocess.run(cmd, env=child_env, capture_output=True, text=True)
            if proc.returncode != 0:
                print(
                    f"| {config} | failed: {(proc.stderr.strip().splitlines() or [proc.returncode])[-1]} |"
                )
                continue
            r = json.loads(proc.stdout.strip().splitlines()[-1])
        base = base or r["wall"]
        print(
            f"| {config} | {r['wall']:.1f} | {r['jobs'] / r['wall']:.2f} | {r['frames'] / r['wall']:.1f} | "
            f"{r['video_s'] / r['wall']:.2f} | {base / r['wall']:.2f}x | {r['first_setup']:.1f} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
