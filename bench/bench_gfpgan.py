"""GFPGAN restoration and whole-enhancer timings on CPU with synthetic (deterministic-fill) weights.

Usage: PYTHONPATH=src python bench/bench_gfpgan.py [--threads 2] [--repeat 3] [--quick]
(also run as part of bench/bench_face.py, whose BENCHES list includes GFPGAN_BENCHES).

Rows:
* restoration ms per face for the three ``restore_size`` variants, plus their GFLOP;
* the ``gfpgan`` enhancer per frame on 256x256 and 512x512 video (one face per frame) for our
  default configuration, its cheaper variants, and the upstream-equivalent configuration
  (RetinaFace ResNet-50, 512 restore, ParseNet mask with the two 101x101 blurs, random noise).

The fill weights never push RetinaFace over the 0.97 threshold, so the enhancer runs the real
detector (its cost is counted) but takes the face landmarks from a fixed template placement.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import numpy as np
from _table import Row, run_table, timeit  # bench/ is on sys.path when run as a script

ROOT = Path(__file__).resolve().parents[1]
ASSET = ROOT / "assets" / "portrait_astronaut.png"




def _net():
    from talkinghead.testing.fill import fill_like
    from talkinghead.face.gfpgan import GFPGANv1Clean

    net = GFPGANv1Clean()
    net.load_state_dict(fill_like(net))
    return net.eval().requires_grad_(False)


def bench_restoration(args) -> list[Row]:
    """Network cost per face for restore_size full512 / align256 / decoder256."""
    import cv2
    import torch

    from talkinghead.face.gfpgan import to_input, to_uint8

    net = _net()
    rng = np.random.default_rng(0)
    crop512 = cv2.GaussianBlur(rng.integers(0, 256, (512, 512, 3), dtype=np.uint8), (7, 7), 0)
    crop256 = cv2.resize(crop512, (256, 256), interpolation=cv2.INTER_AREA)
    rep = min(args.repeat, 3)  # ~2 s per call: bench_face's default of 10 would take minutes
    rows = []

    def full512():
        with torch.inference_mode():
            return to_uint8(net(to_input(crop512[None])))

    def align256():
        up = cv2.resize(crop256, (512, 512), interpolation=cv2.INTER_LINEAR)
        with torch.inference_mode():
            y = to_uint8(net(to_input(up[None])))[0]
        return cv2.resize(y, (256, 256), interpolation=cv2.INTER_AREA)

    def decoder256():
        with torch.inference_mode():
            return to_uint8(net(to_input(crop512[None]), stop_at=256))

    x = to_input(crop512[None])
    g512 = _flops(net, x)
    g256 = _flops(net, x, stop_at=256)
    rows.append(Row("GFPGAN v1.4 restore (a) full512, 1 face", *timeit(full512, rep, warmup=1), f"{g512:.1f} GFLOP"))
    rows.append(Row("GFPGAN v1.4 restore (b) align256 (256->512->256)", *timeit(align256, rep, warmup=1),
                    f"{g512:.1f} GFLOP + 2 resizes"))
    rows.append(Row("GFPGAN v1.4 restore (c) decoder256 (stop at 256)", *timeit(decoder256, rep, warmup=1),
                    f"{g256:.1f} GFLOP ({100 * (1 - g256 / g512):.0f}% less)"))
    if not args.quick:
        batch = np.repeat(crop512[None], 4, axis=0)

        def full512_b4():
            with torch.inference_mode():
                return to_uint8(net(to_input(batch)))

        med, mn, n = timeit(full512_b4, max(1, rep // 2), warmup=1)
        rows.append(Row("GFPGAN v1.4 restore (a) full512, batch of 4, per face", med / 4, mn / 4, n))
    return rows


def _flops(net, x, **kw) -> float:
    """GFLOP of one forward (FLOPs as torch's counter reports them: 2 per multiply-add)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        net(x, **kw)
    return fc.get_total_flops() / 1e9


class _FixedLandmarkDetector:
    """Runs a real RetinaFace (for its cost) and reports one face at a fixed template placement."""

    def __init__(self, det, size: int) -> None:
        from talkinghead.face.align import face_template
        from talkinghead.values import Face

        self.det = det
        lm = face_template(512) * (0.55 * size / 512) + np.array([0.22, 0.12]) * size
        lo, hi = lm.min(0) - 0.1 * size, lm.max(0) + 0.1 * size
        self.face = Face(box=(*lo, *hi), score=0.99, landmarks=lm)

    def load(self) -> None:
        pass

    def detect_batch(self, frames):
        self.det.detect_batch(frames)
        return [[self.face] for _ in frames]


def bench_enhancer(args) -> list[Row]:
    """Whole ``gfpgan`` enhancer per frame (1 face) at 256^2 and 512^2, ours vs upstream-equivalent."""
    import cv2

    from talkinghead.backends.gfpgan import GFPGANEnhancer
    from talkinghead.face.detector import FaceDetector
    from talkinghead.testing.fill import fill_like
    from talkinghead.face.parsenet import ParseNet, load_parsenet
    from talkinghead.face.retinaface import RetinaFace
    from talkinghead.values import FrameChunk

    net = _net()
    dets = {m: FaceDetector.from_state_dict(fill_like(RetinaFace(m)), model=m) for m in ("mobilenet0.25", "resnet50")}
    parsenet = None if args.quick else load_parsenet(fill_like(ParseNet()))
    portrait = cv2.cvtColor(cv2.imread(str(ASSET)), cv2.COLOR_BGR2RGB)
    configs = [
        ("ours: full512, fast paste, mobilenet", "mobilenet0.25", {}),
        ("ours: full512, fast paste, detect_every=5", "mobilenet0.25", {"detect_every": 5}),
        ("ours: align256, fast paste", "mobilenet0.25", {"restore_size": "align256"}),
        ("ours: decoder256 (experimental), fast paste", "mobilenet0.25", {"restore_size": "decoder256"}),
    ]
    if not args.quick:
        configs.append(("upstream-equiv: resnet50, full512, parse+blur, random noise", "resnet50",
                        {"paste": "parse", "noise": "random"}))
    rows = []
    frames_per_call = 2
    for size in (256, 512):
        frame = cv2.resize(portrait, (size, size), interpolation=cv2.INTER_AREA)
        frames = np.repeat(frame[None], frames_per_call, axis=0)
        for label, model, cfg in configs:
            enh = GFPGANEnhancer.from_components(
                detector=_FixedLandmarkDetector(dets[model], size), net=net, parsenet=parsenet, **cfg
            )
            start = [0]

            def run():
                enh.enhance(FrameChunk(frames, start=start[0]))
                start[0] += frames_per_call

            med, mn, n = timeit(run, max(1, min(args.repeat, 3) // 2), warmup=0)
            rows.append(Row(f"enhancer {size}^2 per frame, {label}", med / frames_per_call, mn / frames_per_call,
                            n * frames_per_call, f"{frames_per_call} frames per chunk"))
    return rows


GFPGAN_BENCHES: list[Callable[[argparse.Namespace], list[Row]]] = [bench_restoration, bench_enhancer]


def main(argv: list[str] | None = None) -> int:
    return run_table(GFPGAN_BENCHES, argv, description=__doc__.splitlines()[0], repeat=3,
                     quick_help="skip batching, ResNet-50 and ParseNet rows", width=78, decimals=1)


if __name__ == "__main__":
    raise SystemExit(main())
