"""Benchmark of the viseme animator: frames per second and first-frame latency.

Run: ``PYTHONPATH=src python bench/bench_viseme.py``. Renders 10 s of speech-like audio at
20 fps on the bundled portrait resized to each size, and prints a table.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from talkinghead.backends.viseme import VisemeAnimator
from talkinghead.io import load_image
from talkinghead.testing import tone_speech
from talkinghead.values import Portrait

PORTRAIT = Path(__file__).resolve().parents[1] / "assets" / "portrait_astronaut.png"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--fps", type=float, default=20.0)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    import cv2

    words = ["word"] * int(args.seconds / 0.4)
    audio = tone_speech(words)
    base = load_image(PORTRAIT).image
    animator = VisemeAnimator()
    animator.load()
    rows = []
    for size in args.sizes:
        portrait = Portrait(cv2.resize(base, (size, size), interpolation=cv2.INTER_AREA))
        t0 = time.perf_counter()
        prepared = animator.prepare(portrait)
        prep_s = time.perf_counter() - t0
        best_fps, best_first = 0.0, float("inf")
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            n, first = 0, None
            for chunk in animator.animate(prepared, audio, fps=args.fps):
                if first is None:
                    first = time.perf_counter() - t0
                n += len(chunk)
            total = time.perf_counter() - t0
            best_fps, best_first = max(best_fps, n / total), min(best_first, first)
        rows.append((size, prep_s, best_first, best_fps, best_fps / args.fps, prepared.fields.roi))
    print(f"viseme animator, {args.seconds:g} s of audio at {args.fps:g} fps, best of {args.repeats}; "
          f"{os.cpu_count()} CPUs visible, cv2 threads {cv2.getNumThreads()}")
    header = f"{'size':>6} | {'prepare s':>9} | {'first chunk ms':>14} | {'frames/s':>8} | {'× real time':>11}"
    print(header + " | head ROI")
    print("-" * 75)
    for size, prep_s, first, fps, rt, roi in rows:
        w, h = roi[2] - roi[0], roi[3] - roi[1]
        print(f"{size:>5}² | {prep_s:>9.2f} | {first * 1000:>14.1f} | {fps:>8.0f} | {rt:>11.1f} | {w}×{h}")


if __name__ == "__main__":
    main()
