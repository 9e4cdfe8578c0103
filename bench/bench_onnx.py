"""ONNX variants side by side: error against float32 torch and speed, per graph, in one run.

Run::

    PYTHONPATH=src python bench/bench_onnx.py                          # SadTalker graphs, weights from the cache
    PYTHONPATH=src python bench/bench_onnx.py --fill --graphs mapping expnet_audio posevae_audio
                                                                        # filled official-format weights
    PYTHONPATH=src python bench/bench_onnx.py --fill --face            # + RetinaFace, AWing, ParseNet, GFPGAN

For every graph: torch float32 (the reference), torch bfloat16 autocast, onnxruntime float32, int8
(dynamic), int8s (static QDQ, calibrated on the example input), float16. Columns: median / min
milliseconds per call on the example input, max and mean absolute difference from torch float32.
With filled weights the errors show numerical agreement, not visual quality.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _table import timeit  # noqa: E402


def _outputs(out) -> list[np.ndarray]:
    outs = out if isinstance(out, (tuple, list)) else (out,)
    return [np.asarray(o.detach().float().cpu().numpy() if hasattr(o, "detach") else o, np.float32) for o in outs]


def _err(got: list[np.ndarray], want: list[np.ndarray]) -> tuple[float, float]:
    d = [np.abs(np.asarray(g, np.float32) - w) for g, w in zip(got, want)]
    return float(max(x.max() for x in d)), float(np.mean([x.mean() for x in d]))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--graphs", nargs="+", help="graph names (default: every SadTalker graph)")
    ap.add_argument("--face", action="store_true", help="also the face stack graphs")
    ap.add_argument("--variants", nargs="+", default=["fp32", "int8", "int8s", "fp16"])
    ap.add_argument("--weights-dir", help="SadTalker weights folder (default: the cache)")
    ap.add_argument("--fill", action="store_true", help="filled official-format weights (written once)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--out", help="folder for the graphs (default: a temporary folder)")
    args = ap.parse_args(argv)

    import torch

    from talkinghead.onnx.export import export_graph
    from talkinghead.onnx.graphs import FACE_GRAPHS, SADTALKER_GRAPHS, face_graphs, sadtalker_graphs
    from talkinghead.onnx.quantize import quantize_graph
    from talkinghead.onnx.runtime import make_session, variant_file

    torch.set_num_threads(args.threads)
    tmp = Path(tempfile.gettempdir()) / "talkinghead-bench-onnx"
    out_dir = Path(args.out or tempfile.mkdtemp(prefix="bench-onnx-"))
    names = tuple(args.graphs or SADTALKER_GRAPHS)
    specs = []
    st_names = tuple(n for n in names if n in SADTALKER_GRAPHS)
    if st_names:
        from talkinghead.backends.sadtalker import SadTalkerAnimator

        wdir = args.weights_dir
        if args.fill:
            sys.path.insert(0, str(ROOT / "tests"))
            from sadtalker_weights import write_weights_dir

            wdir = str(tmp / "sadtalker")
            if not (Path(wdir) / "mapping_00229-model.pth.tar").is_file():
                write_weights_dir(Path(wdir))
        specs += sadtalker_graphs(SadTalkerAnimator(weights_dir=wdir).networks(), batch=1, only=st_names)
    if args.face:
        if args.fill:
            from talkinghead.face.awing import AWingFAN
            from talkinghead.testing.fill import fill_like
            from talkinghead.face.gfpgan import GFPGANv1Clean
            from talkinghead.face.parsenet import ParseNet
            from talkinghead.face.retinaface import RetinaFace

            nets = {"retinaface_mobilenet": RetinaFace("mobilenet0.25"), "retinaface_resnet50": RetinaFace("resnet50"),
                    "awing": AWingFAN(), "parsenet": ParseNet(), "gfpgan": GFPGANv1Clean(512)}
            for net in nets.values():
                net.load_state_dict(fill_like(net))
                net.eval()
        else:
            from talkinghead.onnx.face import load_face_networks

            nets = load_face_networks(FACE_GRAPHS)
        specs += face_graphs(nets)

    print(f"torch {torch.__version__}, threads {args.threads}, {'filled' if args.fill else 'cached'} weights; "
          "error = |variant - torch float32|")
    print("| graph | variant | median ms | min ms | max abs err | mean abs err | MB |")
    print("|---|---|---|---|---|---|---|")
    for spec in specs:
        inputs = list(spec.inputs.values())
        feeds = {k: v.detach().numpy() for k, v in spec.inputs.items()}
        module = spec.module.eval()
        with torch.inference_mode():
            want = _outputs(module(*inputs))

        def run_torch(bf16: bool = False):
            with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16, enabled=bf16):
                return module(*inputs)

        med, lo, _ = timeit(run_torch, args.repeat, warmup=1)
        print(f"| {spec.name} | torch fp32 | {med:.1f} | {lo:.1f} | 0 | 0 | |", flush=True)
        med, lo, _ = timeit(lambda: run_torch(True), args.repeat, warmup=1)
        mx, mean = _err(_outputs(run_torch(True)), want)
        print(f"| {spec.name} | torch bf16 autocast | {med:.1f} | {lo:.1f} | {mx:.2e} | {mean:.2e} | |", flush=True)
        export_graph(spec, variant_file(out_dir, spec.name), check=False)
        for v in args.variants:
            path = variant_file(out_dir, spec.name, v)
            try:
                if v != "fp32":
                    quantize_graph(variant_file(out_dir, spec.name), path, v, calibration=[feeds])
                sess = make_session(path, threads=args.threads)
                med, lo, _ = timeit(lambda s=sess: s.run(None, feeds), args.repeat, warmup=1)
                mx, mean = _err(sess.run(None, feeds), want)
                print(f"| {spec.name} | onnx {v} | {med:.1f} | {lo:.1f} | {mx:.2e} | {mean:.2e} | "
                      f"{path.stat().st_size / 1e6:.1f} |", flush=True)
            except Exception as exc:  # a variant the quantizer or the runtime cannot do is a row, not a crash
                print(f"| {spec.name} | onnx {v} | – | – | failed: {type(exc).__name__}: {str(exc)[:80]} | | |",
                      flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
