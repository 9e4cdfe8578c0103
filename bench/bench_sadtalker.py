"""SadTalker animator benchmark: per-stage profile, optimisation ablation, run time vs fps.

Uses the deterministic fill at full size (official-format files written to a temp dir), so no
download is needed; the timings are those of the real architecture. One command, one run:

    PYTHONPATH=src python bench/bench_sadtalker.py --frames 2 --seconds 0.5

The generator costs several seconds per 256x256 frame on a small CPU, so keep clips tiny.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

FIX = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "sadtalker"


def _files(tmp: Path) -> Path:
    from talkinghead.testing import fill

    fill.write_checkpoint(FIX / "manifests" / "SadTalker_V0.0.2_256.safetensors.json",
                          tmp / "SadTalker_V0.0.2_256.safetensors")
    fill.write_checkpoint(FIX / "manifests" / "mapping_00229-model.pth.tar.json", tmp / "mapping_00229-model.pth.tar")
    fill.write_checkpoint(FIX / "manifests" / "mapping_00109-model.pth.tar.json", tmp / "mapping_00109-model.pth.tar")
    return tmp


def _prepared(anim, full: bool):
    import torch

    from talkinghead.backends.sadtalker.backend import SadTalkerPrepared
    from talkinghead.face.paste import BoxPaster as Paster

    ref = np.load(FIX / "render_ref.npz")
    src = torch.from_numpy(ref["source_u8"].astype(np.float32) / 255).permute(2, 0, 1)[None].contiguous()
    coeff = np.random.RandomState(0).standard_normal(73).astype(np.float32) * 0.1
    kp = feats = None
    with torch.inference_mode():
        if anim.kp_once:
            kp = anim._nets["kp"](src)
        if anim.source_cache:
            feats = anim._nets["gen"].encode_source(src)
    paster = None
    if full:
        big = np.zeros((512, 448, 3), np.uint8) + 90
        paster = Paster(big, (100, 120, 356, 376), anim.paste_mode)
    return SadTalkerPrepared(src, coeff, kp, feats, (256, 256), paster)


def _frames(wdir: Path, frames: int, **cfg) -> np.ndarray:
    from talkinghead.backends.sadtalker.backend import SadTalkerAnimator

    a = SadTalkerAnimator(weights_dir=wdir, **cfg)
    a.load()
    coeffs = (np.random.RandomState(1).standard_normal((frames, 70)) * 0.1).astype(np.float32)
    return np.concatenate([c.frames for c in a.render(_prepared(a, False), coeffs)])


def bf16_error(wdir: Path) -> None:
    """Max / mean difference of one frame rendered with bfloat16 autocast vs float32."""
    import torch

    print("\n### bfloat16 autocast vs float32 (1 frame, 256 px, uint8 output)\n")
    ref = _frames(wdir, 1, bf16=False).astype(np.int16)
    t0 = time.perf_counter()
    try:
        out = _frames(wdir, 1, bf16=True).astype(np.int16)
    except (RuntimeError, TypeError) as exc:  # CPUs without bf16 support
        print(f"bf16 not available here: {exc}")
        return
    dt = time.perf_counter() - t0
    d = np.abs(out - ref)
    print("| max abs diff (levels) | mean abs diff (levels) | pixels off by > 8 levels | bf16 time (s) |")
    print("|---|---|---|---|")
    print(f"| {d.max()} | {d.mean():.2f} | {100 * (d > 8).mean():.2f} % | {dt:.1f} |")
    del torch


def temp_video_roundtrip(frames: int = 25) -> float:
    """Seconds per frame upstream spends writing frames to a temporary mp4 and reading them back."""
    import av

    from talkinghead.backends.mp4 import Mp4Writer
    from talkinghead.values import FrameChunk

    fr = np.random.RandomState(0).randint(0, 255, (frames, 256, 256, 3)).astype(np.uint8)
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        Mp4Writer().write([FrameChunk(fr)], None, Path(d) / "tmp.mp4", fps=25)
        with av.open(str(Path(d) / "tmp.mp4")) as c:
            back = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
        assert len(back) == frames
        return (time.perf_counter() - t0) / frames


def _run(wdir: Path, frames: int, **cfg) -> float:
    from talkinghead.backends.sadtalker.backend import SadTalkerAnimator

    full = cfg.pop("full", False)
    a = SadTalkerAnimator(weights_dir=wdir, preprocess="full" if full else "crop", **cfg)
    a.load()
    coeffs = (np.random.RandomState(1).standard_normal((frames, 70)) * 0.1).astype(np.float32)
    t0 = time.perf_counter()
    prep = _prepared(a, full)
    n = sum(len(c.frames) for c in a.render(prep, coeffs))
    dt = time.perf_counter() - t0
    assert n == frames
    return dt


def profile(wdir: Path) -> None:
    import torch

    from talkinghead.backends.sadtalker.backend import SadTalkerAnimator

    a = SadTalkerAnimator(weights_dir=wdir)
    a.load()
    ref = np.load(FIX / "render_ref.npz")
    src = torch.from_numpy(ref["source_u8"].astype(np.float32) / 255).permute(2, 0, 1)[None].contiguous()
    ks, kd = torch.from_numpy(ref["kp_source"]), torch.from_numpy(ref["kp_driving"])
    gen = a._nets["gen"]
    rows = []
    with torch.inference_mode():
        def timeit(name, fn, reps=1):
            t0 = time.perf_counter()
            for _ in range(reps):
                out = fn()
            rows.append((name, (time.perf_counter() - t0) / reps))
            return out

        timeit("KPDetector (once per portrait)", lambda: a._nets["kp"](src))
        feats = timeit("generator source encoder (once per portrait with source_cache)", lambda: gen.encode_source(src))
        timeit("MappingNet (per frame)", lambda: a._nets["mapping"](torch.zeros(1, 70, 27)), reps=5)
        vol = feats.volume
        dm = timeit("dense motion (per frame)", lambda: gen.dense_motion_network(vol, kd, ks, compressed=feats.compressed))
        warped = timeit("warp + third/fourth (per frame)", lambda: gen.fourth(gen.third(
            torch.nn.functional.grid_sample(vol, dm[0], align_corners=False).reshape(1, -1, 64, 64))) * dm[1])
        timeit("SPADE decoder (per frame)", lambda: gen.decoder(warped))
    print("\n### Per-stage profile (256 px, batch 1, filled full-size weights)\n")
    print("| stage | seconds |\n|---|---|")
    for n, t in rows:
        print(f"| {n} | {t:.3f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--frames", type=int, default=2, help="frames per ablation run")
    ap.add_argument("--seconds", type=float, default=0.5, help="clip length for the fps table")
    ap.add_argument("--skip-fps", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as d:
        wdir = _files(Path(d))
        profile(wdir)
        up = dict(batched=False, kp_once=False, source_cache=False, weight_cache=False, inference_mode=False,
                  batch_size=2)
        ours = dict(batched=True, kp_once=True, source_cache=True, weight_cache=True, inference_mode=True,
                    batch_size=2)
        print(f"\n### Ablation ({args.frames} frames, 256 px; seconds for the render loop)\n")
        print("| configuration | seconds | s/frame |\n|---|---|---|")
        configs = [("upstream-like (all off, per-frame, kp per row)", up), ("all on (default)", ours)]
        for k in ("batched", "kp_once", "source_cache", "weight_cache", "inference_mode"):
            configs.append((f"default with {k}=False", {**ours, k: False}))
        configs.append(("default + channels_last", {**ours, "channels_last": True}))
        configs.append(("default + bf16 autocast", {**ours, "bf16": True}))
        for name, cfg in configs:
            dt = _run(wdir, args.frames, **cfg)
            print(f"| {name} | {dt:.2f} | {dt / args.frames:.2f} |", flush=True)
        for mode in ("seamless", "fast"):
            from talkinghead.face.paste import BoxPaster as Paster

            big = np.random.RandomState(0).randint(0, 255, (1024, 768, 3)).astype(np.uint8)
            fr = np.random.RandomState(1).randint(0, 255, (8, 256, 256, 3)).astype(np.uint8)
            p = Paster(big, (200, 300, 600, 700), mode)
            t0 = time.perf_counter()
            p.paste(fr)
            print(f"| paste-back {mode} (1024x768 portrait, per frame) | {(time.perf_counter() - t0) / 8:.4f} | |")
        print(f"| temp-video write + read back, as upstream between stages (per frame) | {temp_video_roundtrip():.4f} | |")
        print("| streaming frames to the writer (ours, per frame) | 0 | |")
        bf16_error(wdir)
        if not args.skip_fps:
            print(f"\n### Run time vs fps ({args.seconds} s clip, render loop, default switches)\n")
            print("| fps | frames | seconds |\n|---|---|---|")
            for fps in (16, 20, 25):
                n = max(1, int(round(args.seconds * fps)))
                print(f"| {fps} | {n} | {_run(wdir, n, **ours):.1f} |", flush=True)


if __name__ == "__main__":
    main()
