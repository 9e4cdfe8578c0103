"""Benchmark of the bank animator: quality against K, build time, play speed and first-frame latency.

Run (one command, prints one table)::

    PYTHONPATH=src python bench/bench_bank.py                       # viseme source, K = 8 16 32 64
    PYTHONPATH=src python bench/bench_bank.py --source sadtalker --weights-dir DIR --k 64 --no-quality
                                                                     # SadTalker build time (slow: ~K x 7 s)

For each K the bank of the portrait (resized to ``--size``²) is built from the speech set spoken by
piper, then a held-out clip (text not in the speech set) is played twice: the second, warm run gives
frames per second and the time to the first chunk. Quality compares the bank's frames with the
source animator's direct render of the same audio (same parameters): PSNR and SSIM over the region
the source animates (the head for viseme, the crop for SadTalker), and the lip aperture measured by
MediaPipe on both (Pearson r between the two curves, and each against the speech envelope).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PORTRAIT = ROOT / "assets" / "portrait_astronaut.png"
HELD_OUT = ("Good evening. I wanted to tell you about the weather tomorrow: cloudy in the morning, "
            "then bright sunshine, with a chance of a light shower around five.")


def _metrics():
    """PSNR, SSIM (of grey images) and lip apertures: ``talkinghead.eval``'s, else the test helpers."""
    try:
        from talkinghead.eval.measure import lip_apertures
        from talkinghead.eval.metrics import best_lag_correlation, psnr, ssim
        return psnr, ssim, lip_apertures, best_lag_correlation
    except ImportError:
        sys.path.insert(0, str(ROOT / "tests"))
        from _viseme_measure import best_lag_correlation, lip_apertures

        def psnr(a, b):
            mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
            return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)

        def ssim(x, y):
            import cv2

            x, y = x.astype(np.float64), y.astype(np.float64)
            c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
            blur = lambda z: cv2.GaussianBlur(z, (11, 11), 1.5)  # noqa: E731
            mx, my = blur(x), blur(y)
            sxx, syy, sxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
            m = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
            return float(m.mean())

        return psnr, ssim, lip_apertures, best_lag_correlation


def _region(bank, prepared, frames):
    """The part of the output frames the source animates (what the quality numbers compare)."""
    play = prepared.play
    if hasattr(play, "roi"):
        x0, y0, x1, y1 = play.roi
        return frames[:, y0:y1, x0:x1]
    return frames


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", default="viseme", choices=("viseme", "sadtalker"))
    ap.add_argument("--k", type=int, nargs="+", default=[8, 16, 32, 64])
    ap.add_argument("--size", type=int, default=256, help="portrait side (viseme) / renderer size (sadtalker)")
    ap.add_argument("--fps", type=float, default=25.0)
    ap.add_argument("--sentences", type=int, default=None, help="first N sentences of the speech set (default all)")
    ap.add_argument("--interpolation", nargs="+", default=["flow"], choices=("flow", "blend", "nearest"))
    ap.add_argument("--flow-preset", default="fast", choices=("ultrafast", "fast", "medium"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--weights-dir", help="SadTalker weights folder")
    ap.add_argument("--runtime", default="torch", help="SadTalker runtime (torch, onnx, onnx-int8, onnx-fp16)")
    ap.add_argument("--param-runtime", nargs="+", default=["auto"],
                    help="SadTalker's parameter networks at play time: auto (onnxruntime), torch, ... (one row each)")
    ap.add_argument("--no-quality", action="store_true", help="skip the direct render and the quality columns")
    ap.add_argument("--bank-dir", help="cache folder (default: a temporary one, so every K is built)")
    args = ap.parse_args(argv)

    import cv2
    import torch

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    from talkinghead.backends.bank import BankAnimator
    from talkinghead.backends.piper import PiperTTS
    from talkinghead.io import load_image
    from talkinghead.values import Portrait

    psnr, ssim, lip_apertures, best_lag = _metrics()
    base = load_image(PORTRAIT).image
    if args.source == "viseme":
        portrait = Portrait(cv2.resize(base, (args.size, args.size), interpolation=cv2.INTER_AREA))
        source_config: dict = {}
    else:
        portrait = Portrait(base)
        source_config = {"size": args.size, "runtime": args.runtime, "seed": 0}
        if args.weights_dir:
            source_config["weights_dir"] = args.weights_dir
    tts = PiperTTS()
    tts.load()
    clip = tts.synthesize(HELD_OUT)
    bank_dir = Path(args.bank_dir or tempfile.mkdtemp(prefix="bench-bank-"))
    env = clip.rms_envelope(args.fps, None)

    direct = None
    rows = []
    runs = [(k, interp, pr) for k in args.k for interp in args.interpolation
            for pr in (args.param_runtime if args.source == "sadtalker" else ["-"])]
    for k, interp, param_runtime in runs:
        config = dict(source_config, param_runtime=param_runtime) if args.source == "sadtalker" else source_config
        def animator(config=config, k=k, interp=interp):
            return BankAnimator(source=args.source, source_config=config, k=k, tts=tts, bank_dir=bank_dir,
                                sentences=args.sentences, interpolation=interp, flow_preset=args.flow_preset)

        t0 = time.perf_counter()
        path = animator().build(portrait)  # built (or found) by one animator, played by a fresh one
        build_s = time.perf_counter() - t0
        bank = animator()
        t0 = time.perf_counter()
        prepared = bank.prepare(portrait)
        prep_s = time.perf_counter() - t0
        m = prepared.pack.manifest
        frames, first_ms, fps = None, 0.0, 0.0
        for _ in range(2):  # the second run is warm (flows of the pairs it meets are cached)
            t0 = time.perf_counter()
            chunks, first = [], None
            for chunk in bank.animate(prepared, clip, fps=args.fps):
                if first is None:
                    first = time.perf_counter() - t0
                chunks.append(chunk.frames)
            total = time.perf_counter() - t0
            frames = np.concatenate(chunks)
            first_ms, fps = first * 1000, len(frames) / total
        row = {"k": k, "interp": interp, "params": param_runtime, "build_s": float(m.get("build_seconds", build_s)),
               "render_s_per_frame": float(m.get("render_seconds", 0)) / max(1, k), "prepare_s": prep_s,
               "fps": fps, "first_ms": first_ms, "frames": len(frames), "pack_mb": path.stat().st_size / 1e6}
        if not args.no_quality:
            if direct is None:
                src = bank.source
                src.load()
                sp = src.prepare(portrait)
                t0 = time.perf_counter()
                direct = np.concatenate([c.frames for c in src.animate(sp, clip, fps=args.fps)])
                direct_fps = len(direct) / (time.perf_counter() - t0)
                lip_direct = lip_apertures(direct)
            a, b = _region(bank, prepared, frames), _region(bank, prepared, direct)
            lip_bank = lip_apertures(frames)
            grey = [(cv2.cvtColor(np.ascontiguousarray(x), cv2.COLOR_RGB2GRAY),
                     cv2.cvtColor(np.ascontiguousarray(y), cv2.COLOR_RGB2GRAY)) for x, y in zip(a, b)]
            row.update(psnr=float(np.mean([psnr(x, y) for x, y in zip(a, b)])),
                       ssim=float(np.mean([ssim(x, y) for x, y in grey])),
                       lip_r=best_lag(lip_bank, lip_direct, 0)[0],
                       lip_audio=best_lag(lip_bank, env, 2)[0], lip_audio_direct=best_lag(lip_direct, env, 2)[0],
                       direct_fps=direct_fps)
        rows.append(row)
        print(f"  done K={k} {interp}: {row}", file=sys.stderr, flush=True)

    print(f"bank animator, source {args.source}, portrait {portrait.size[0]}x{portrait.size[1]}, held-out clip "
          f"{clip.duration:.1f} s at {args.fps:g} fps, speech set {m['speech']['seconds']:.0f} s "
          f"({m['speech']['sentences']} sentences); torch/cv2 threads {args.threads}, {os.cpu_count()} CPUs visible")
    head = "| K | interp | parameter nets | build s | s/frame | pack MB | play fps | first chunk ms |"
    sep = "|---|---|---|---|---|---|---|---|"
    if not args.no_quality:
        head += " PSNR dB | SSIM | lip r vs direct | lip r vs audio (bank / direct) |"
        sep += "---|---|---|---|"
    print(head)
    print(sep)
    for r in rows:
        line = (f"| {r['k']} | {r['interp']} | {r['params']} | {r['build_s']:.1f} | {r['render_s_per_frame']:.3f} "
                f"| {r['pack_mb']:.1f} "
                f"| {r['fps']:.1f} | {r['first_ms']:.0f} |")
        if "psnr" in r:
            line += (f" {r['psnr']:.2f} | {r['ssim']:.4f} | {r['lip_r']:.3f} | {r['lip_audio']:.3f} / "
                     f"{r['lip_audio_direct']:.3f} |")
        print(line)
    if direct is not None:
        print(f"direct render of the source: {rows[-1]['direct_fps']:.1f} fps")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
