"""Face-stack timings on CPU with synthetic (deterministic-fill) weights; prints one table.

Usage: PYTHONPATH=src python bench/bench_face.py [--threads 2] [--repeat 10] [--quick]

Rows are produced by the functions in BENCHES; add a function ``bench_xxx(args) -> list[Row]`` and
append it to the list to add rows (the GFPGAN restoration rows go there).
Timing is weight-independent except for how many boxes pass the detector threshold.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import numpy as np
from _table import Row, run_table, timeit  # bench/ is on sys.path when run as a script

ROOT = Path(__file__).resolve().parents[1]
ASSET = ROOT / "assets" / "portrait_astronaut.png"




def _portrait_bgr(size: int) -> np.ndarray:
    import cv2

    return cv2.resize(cv2.imread(str(ASSET)), (size, size), interpolation=cv2.INTER_AREA)


def bench_detection(args) -> list[Row]:
    import torch

    from talkinghead.testing.fill import fill_like
    from talkinghead.face.retinaface import RetinaFace, detect_faces, load_retinaface, priors_for

    rows = []
    img = _portrait_bgr(512)
    for model, rep in (("mobilenet0.25", args.repeat), ("resnet50", max(3, args.repeat // 3))):
        if model == "resnet50" and args.quick:
            continue
        net = load_retinaface(fill_like(RetinaFace(model)), model)
        x = net.preprocess(img)
        with torch.no_grad():
            rows.append(Row(f"RetinaFace {model} forward 512x512", *timeit(lambda: net(x), rep)))
        rows.append(Row(f"RetinaFace {model} detect (conf 0.97) 512x512", *timeit(
            lambda: detect_faces(net, img, 0.97), rep), "incl. preprocessing, cached priors, decode, NMS"))
    rows.append(Row("priors 512x512 (cached lookup)", *timeit(lambda: priors_for(512, 512), 50), "upstream: 8.8 ms"))
    return rows


def bench_paste(args) -> list[Row]:
    from talkinghead.face import align, paste

    rows = []
    yy, xx = np.mgrid[0:512, 0:512]
    labels = np.zeros((512, 512), np.uint8)
    labels[((xx - 256) / 170.0) ** 2 + ((yy - 300) / 215.0) ** 2 < 1] = 1
    for size in (256, 512):
        frame = _portrait_bgr(size)
        s = size / 512
        lm = np.array([[200, 240], [312, 242], [256, 300], [210, 360], [305, 362]], float) * s
        m = align.estimate_affine(lm, 512)
        face = 255 - align.warp_face(frame, m, 512)
        rows.append(Row(f"align: LMEDS affine + 512 crop, {size}^2 frame", *timeit(
            lambda: align.warp_face(frame, align.estimate_affine(lm, 512), 512), args.repeat)))
        for mode in ("square", "parse", "parse_noblur", "fast"):
            paster = paste.FastPaster()
            fn = lambda: paste.paste_faces(frame, [face], [m], upscale=2, mode=mode,  # noqa: E731
                                           parse_labels=[labels], fast=paster)
            note = {"parse": "excl. ParseNet forward", "parse_noblur": "excl. ParseNet forward",
                    "fast": "cached mask; incl. LANCZOS4 background upscale"}.get(mode, "")
            rows.append(Row(f"paste-back {mode}, {size}^2 frame, up 2, face 512", *timeit(fn, args.repeat), note))
        bg = paste.upscale_background(frame, 2)
        paster = paste.FastPaster()
        rows.append(Row(f"paste-back fast blend only (no bg upscale), {size}^2 up 2", *timeit(
            lambda: paster.paste(bg.copy(), [face], [m], upscale=2), args.repeat)))
    return rows


def bench_parsenet(args) -> list[Row]:
    if args.quick:
        return []
    import torch

    from talkinghead.testing.fill import fill_like
    from talkinghead.face.parsenet import ParseNet, load_parsenet

    net = load_parsenet(fill_like(ParseNet()))
    x = torch.zeros(1, 3, 512, 512)
    with torch.no_grad():
        return [Row("ParseNet forward 512x512", *timeit(lambda: net(x), 2, warmup=1), "only for parse modes")]


#: Each entry returns rows; append more (e.g. GFPGAN restoration) here.
def bench_mesh(args) -> list[Row]:
    """The face mesh on the test portrait: mediapipe and LiteRT backends, and the hard-face passes."""
    import cv2

    from talkinghead.face.landmarks import MeshLandmarks

    rows = []
    img = cv2.cvtColor(_portrait_bgr(512), cv2.COLOR_BGR2RGB)
    for name in ("mediapipe", "litert"):
        try:
            finder = MeshLandmarks(name)
            finder.load()
        except Exception as exc:  # noqa: BLE001 - a backend that cannot run here
            rows.append(Row(f"mesh {name}: not available", float("nan"), float("nan"), 0, str(exc)[:60]))
            continue
        back = finder.backend
        face = back.detect(img)[0]
        rows.append(Row(f"mesh {name}: full-range detect 512x512", *timeit(lambda b=back: b.detect(img), args.repeat)))
        rows.append(Row(f"mesh {name}: 478-point mesh of one face", *timeit(
            lambda b=back, f=face: b.mesh(img, f), args.repeat), "incl. iris (LiteRT: 2 iris runs)"))
        rows.append(Row(f"mesh {name}: find (detect + select + mesh)", *timeit(
            lambda f=finder: f.find(img), args.repeat)))
        if not args.quick:
            big = np.zeros((4000, 6000, 3), np.uint8)
            big[2600:3090, 4100:4590] = cv2.resize(img, (490, 490), interpolation=cv2.INTER_AREA)
            rows.append(Row(f"mesh {name}: find a ~94 px face in 6000x4000", *timeit(
                lambda f=finder: f.find(big), 1, warmup=0), "whole-image passes miss it; tiles find it"))
        finder.close()
    return rows


BENCHES: list[Callable[[argparse.Namespace], list[Row]]] = [bench_detection, bench_paste, bench_parsenet, bench_mesh]


def _gfpgan_benches() -> list[Callable[[argparse.Namespace], list]]:
    """GFPGAN restoration and whole-enhancer rows, from bench_gfpgan.py next to this file."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_gfpgan", Path(__file__).with_name("bench_gfpgan.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.GFPGAN_BENCHES


BENCHES += _gfpgan_benches()


def main(argv: list[str] | None = None) -> int:
    return run_table(BENCHES, argv, description=__doc__.splitlines()[0], repeat=10,
                     quick_help="skip ResNet-50 and ParseNet")


if __name__ == "__main__":
    raise SystemExit(main())
