"""Shared by the face benchmarks: a result row, a timer, and the one-run table printer."""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence
from typing import NamedTuple


class Row(NamedTuple):
    name: str
    median_ms: float
    min_ms: float
    n: int
    note: str = ""


def timeit(fn: Callable[[], object], repeat: int, warmup: int = 2) -> tuple[float, float, int]:
    """Median and minimum milliseconds of ``repeat`` calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t) * 1000)
    return statistics.median(ts), min(ts), repeat


def run_table(
    benches: Sequence[Callable[[argparse.Namespace], list[Row]]],
    argv: list[str] | None,
    *,
    description: str,
    repeat: int,
    quick_help: str,
    width: int = 58,
    decimals: int = 2,
) -> int:
    """Parse the common options, then print every bench's rows as one markdown table."""
    import cv2
    import torch

    p = argparse.ArgumentParser(description=description)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeat", type=int, default=repeat)
    p.add_argument("--quick", action="store_true", help=quick_help)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, opencv {cv2.__version__}, threads {args.threads}")
    print(f"| {'step':<{width}} | {'median ms':>9} | {'min ms':>8} | {'n':>3} | note |")
    print(f"| {'-' * width} | {'-' * 9} | {'-' * 8} | {'-' * 3} | --- |")
    for bench in benches:
        for r in bench(args):
            print(f"| {r.name:<{width}} | {r.median_ms:9.{decimals}f} | {r.min_ms:8.{decimals}f} | {r.n:3d} | {r.note} |",
                  flush=True)
    return 0
