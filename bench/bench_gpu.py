"""The GPU path: SadTalker on a 7 s clip at 20 fps, with and without the GFPGAN enhancer.

One command on a CUDA machine with the weights downloaded (``talkinghead weights download sadtalker
gfpgan-v1.4 retinaface-mobilenet0.25``)::

    python bench/bench_gpu.py

prints one table: per configuration (batch size, precision, enhancer) the seconds to render the
clip to frames (no video encoding), frames per second, and the ratio to upstream SadTalker's
published run (uTalk: 29.4 s for a 7 s clip at 25 fps on an RTX 3090 Ti, i.e. 6.0 frames/s; our
clip has 140 frames at 20 fps). Target: <= 3.5 s with the enhancer.

Check on a CPU at a tiny size (the tiny seeded networks of ``talkinghead.testing.nets`` and a detector
that reports the centre face: no weight files)::

    python bench/bench_gpu.py --device cpu --tiny --seconds 1 --fps 10 --batch 2 --precision fp32 --repeat 1

The CPU check shows the script runs end to end; its figures are not GPU figures.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PORTRAIT = ROOT / "assets" / "portrait_astronaut.png"
UPSTREAM_S, UPSTREAM_FRAMES = 29.4, 7 * 25  # uTalk's measurement of upstream SadTalker, RTX 3090 Ti


class _CentreFace:
    """Detector stand-in for the tiny check: one face in the middle of every frame (5 landmarks)."""

    def load(self) -> None:
        return None

    def detect_batch(self, frames):
        import numpy as np

        from talkinghead.values import Face

        out = []
        for f in frames:
            h, w = f.shape[:2]
            s = min(h, w)
            lm = np.array([[0.38, 0.42], [0.62, 0.42], [0.5, 0.55], [0.41, 0.68], [0.59, 0.68]]) * s
            lm += [(w - s) / 2, (h - s) / 2]
            out.append([Face(box=(lm[:, 0].min() - s / 5, lm[:, 1].min() - s / 4, lm[:, 0].max() + s / 5,
                                  lm[:, 1].max() + s / 5), score=0.99, landmarks=lm)])
        return out


def _stages(args, precision: str, batch: int, enhancer: str):
    """(animator, enhancer) specs or instances for one configuration."""
    opts = {"device": args.device, "batch_size": batch, "chunk_frames": max(batch, 8), "preprocess": args.preprocess,
            "fp16": precision == "fp16", "bf16": precision == "bf16"}
    enh_opts = {"device": args.device, "batch_size": batch, "half": precision == "fp16"}
    if args.tiny:
        from talkinghead.backends.gfpgan import GFPGANEnhancer
        from talkinghead.backends.sadtalker import SadTalkerAnimator
        from talkinghead.testing import nets

        nc = 73 if "full" in args.preprocess else 70
        anim = SadTalkerAnimator.from_networks(nets.tiny_sadtalker(coeff_nc=nc), **opts)
        enh = GFPGANEnhancer.from_components(detector=_CentreFace(), net=nets.tiny_gfpgan().to(args.device),
                                             **enh_opts) if enhancer == "gfpgan" else None
        return anim, enh
    if args.weights_dir:
        opts["weights_dir"] = args.weights_dir
    return ("sadtalker", opts), (("gfpgan", enh_opts) if enhancer == "gfpgan" else None)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--seconds", type=float, default=7.0)
    ap.add_argument("--fps", type=float, default=20.0)
    ap.add_argument("--batch", type=int, nargs="+", default=[8, 32])
    ap.add_argument("--precision", nargs="+", default=["fp32", "fp16"], choices=("fp32", "fp16", "bf16"))
    ap.add_argument("--enhancer", nargs="+", default=["none", "gfpgan"], choices=("none", "gfpgan"))
    ap.add_argument("--weights-dir", help="SadTalker weights folder (default: the weights cache)")
    ap.add_argument("--tiny", action="store_true", help="tiny seeded networks, no weight files (CPU check)")
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
    import numpy as np

    from talkinghead.values import Audio

    speech = tone_speech(["word"] * (int(args.seconds / 0.4) + 1), word_s=0.3, gap_s=0.1)
    n = int(round(args.seconds * speech.sample_rate))  # exactly --seconds of speech-like audio
    audio = Audio(np.pad(speech.samples, (0, max(0, n - len(speech.samples))))[:n], speech.sample_rate)
    n_frames = int(round(audio.duration * args.fps))
    dev_name = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "CPU"
    print(f"SadTalker {args.preprocess} 256, {audio.duration:.1f} s clip at {args.fps:g} fps ({n_frames} frames), "
          f"device {dev_name}, torch {torch.__version__}{' (tiny networks)' if args.tiny else ''}")
    print("| batch | precision | enhancer | seconds | frames/s | vs upstream 3090 Ti (6.0 fps) | <= 3.5 s |")
    print("|---|---|---|---|---|---|---|")
    cache = ModelCache()
    for enhancer in args.enhancer:
        for precision in args.precision:
            for batch in args.batch:
                anim, enh = _stages(args, precision, batch, enhancer)
                av = Avatar(PORTRAIT, tts=None, animator=anim, enhancer=enh, writer=None, fps=args.fps, cache=cache)
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
