"""The GPU path: SadTalker on a 7 s clip at 20 fps, with and without the GFPGAN enhancer.

One command on a CUDA machine with the weights downloaded (``talkinghead weights download sadtalker
gfpgan-v1.4 retinaface-mobilenet0.25``)::

    python bench/bench_gpu.py

prints one table: per configuration (batch size, precision, enhancer) the seconds to render the
clip to frames (no video encoding), frames per second, and the ratio to upstream SadTalker's
published run (uTalk: 29.4 s for a 7 s clip at 25 fps on an RTX 3090 Ti, i.e. 6.0 frames/s; our
clip has 140 frames at 20 fps). Target: <= 3.5 s with the enhancer.

Check on a CPU at a tiny size (filled official-format weights, written once to a temporary folder)::

    python bench/bench_gpu.py --device cpu --seconds 0.2 --fps 10 --fill --batch 2 --precision fp32

The CPU check shows the script runs; its figures are not GPU figures.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PORTRAIT = ROOT / "assets" / "portrait_astronaut.png"
UPSTREAM_S, UPSTREAM_FRAMES = 29.4, 7 * 25  # uTalk's measurement of upstream SadTalker, RTX 3090 Ti


def _fill_weights(folder: Path) -> Path:
    sys.path.insert(0, str(ROOT / "tests"))
    from sadtalker_weights import write_weights_dir

    if not (folder / "mapping_00229-model.pth.tar").is_file():
        write_weights_dir(folder)
    return folder


def _gfpgan_fill(folder: Path) -> dict:
    """Filled official-format GFPGAN + RetinaFace files for the CPU check."""
    from talkinghead.face.fill import fill_like, save_flat_checkpoint, save_gfpgan_checkpoint
    from talkinghead.face.gfpgan import GFPGANv1Clean
    from talkinghead.face.retinaface import RetinaFace

    g, d = folder / "GFPGANv1.4.pth", folder / "detection_mobilenet0.25_Final.pth"
    if not g.is_file():
        save_gfpgan_checkpoint(fill_like(GFPGANv1Clean(512)), g)
    if not d.is_file():
        save_flat_checkpoint(fill_like(RetinaFace("mobilenet0.25")), d)
    return {"weights": str(g), "detector_weights": str(d)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--seconds", type=float, default=7.0)
    ap.add_argument("--fps", type=float, default=20.0)
    ap.add_argument("--batch", type=int, nargs="+", default=[8, 32])
    ap.add_argument("--precision", nargs="+", default=["fp32", "fp16"], choices=("fp32", "fp16", "bf16"))
    ap.add_argument("--enhancer", nargs="+", default=["none", "gfpgan"], choices=("none", "gfpgan"))
    ap.add_argument("--weights-dir", help="SadTalker weights folder (default: the weights cache)")
    ap.add_argument("--fill", action="store_true", help="use filled official-format weights (CPU check)")
    ap.add_argument("--preprocess", default="crop")
    ap.add_argument("--repeat", type=int, default=2, help="runs per configuration (the best is reported)")
    args = ap.parse_args(argv)

    import torch

    from talkinghead import Avatar
    from talkinghead.cache import ModelCache
    from talkinghead.testing import tone_speech

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA device: run on a GPU machine, or check the script with --device cpu (see --help)")
        return 2
    tmp = Path(tempfile.gettempdir()) / "talkinghead-bench-gpu"
    weights_dir = args.weights_dir
    enh_files: dict = {}
    if args.fill:
        weights_dir = str(_fill_weights(tmp / "sadtalker"))
        if "gfpgan" in args.enhancer:
            enh_files = _gfpgan_fill(tmp / "face")
    words = max(1, int(args.seconds / 0.4))
    audio = tone_speech(["word"] * words, word_s=0.3, gap_s=0.1)
    n_frames = int(round(audio.duration * args.fps))
    dev_name = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "CPU"
    print(f"SadTalker {args.preprocess} 256, {audio.duration:.1f} s clip at {args.fps:g} fps ({n_frames} frames), "
          f"device {dev_name}, torch {torch.__version__}{' (filled weights)' if args.fill else ''}")
    print("| batch | precision | enhancer | seconds | frames/s | vs upstream 3090 Ti (6.0 fps) | <= 3.5 s |")
    print("|---|---|---|---|---|---|---|")
    cache = ModelCache()
    for enhancer in args.enhancer:
        for precision in args.precision:
            for batch in args.batch:
                opts = {"device": args.device, "batch_size": batch, "chunk_frames": max(batch, 8),
                        "preprocess": args.preprocess, "fp16": precision == "fp16", "bf16": precision == "bf16"}
                if weights_dir:
                    opts["weights_dir"] = weights_dir
                enh = None
                if enhancer == "gfpgan":
                    enh = ("gfpgan", {"device": args.device, "batch_size": batch, "half": precision == "fp16",
                                      **enh_files})
                av = Avatar(PORTRAIT, tts=None, animator=("sadtalker", opts), enhancer=enh, writer=None,
                            fps=args.fps, cache=cache)
                av.preload()
                best = float("inf")
                for _ in range(args.repeat):
                    if args.device.startswith("cuda"):
                        torch.cuda.synchronize()
                    t0 = time.perf_counter()
                    n = sum(len(c) for c in av.frames(audio))
                    if args.device.startswith("cuda"):
                        torch.cuda.synchronize()
                    best = min(best, time.perf_counter() - t0)
                fps = n / best
                print(f"| {batch} | {precision} | {enhancer} | {best:.2f} | {fps:.1f} | "
                      f"{fps / (UPSTREAM_FRAMES / UPSTREAM_S):.1f}x | {'yes' if best <= 3.5 else 'no'} |", flush=True)
    print("upstream reference: uTalk measured 29.4 s for 7 s at 25 fps (175 frames) on an RTX 3090 Ti")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
