"""``talkinghead export onnx``: networks to ONNX graphs (checked against torch), with quantized variants."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TextIO

from ..errors import ConfigError
from .common import ProgressBar, parse_settings, typed_config


def cmd_onnx(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from ..onnx.export import export_graphs
    from ..onnx.graphs import FACE_GRAPHS, SADTALKER_GRAPHS, face_graphs, sadtalker_graphs

    variants = [v for v in (args.quantize or "").split(",") if v]
    from ..onnx.quantize import QUANT_VARIANTS

    for v in variants:
        if v not in QUANT_VARIANTS:
            raise ConfigError(f"--quantize takes {', '.join(QUANT_VARIANTS)} (comma-separated), got {v!r}")
    only = tuple(g for g in (args.graphs or "").split(",") if g) or None
    known = set(SADTALKER_GRAPHS) | set(FACE_GRAPHS)
    for g in only or ():
        if g not in known:
            raise ConfigError(f"unknown graph {g!r}; graphs: {', '.join(sorted(known))}")
    if args.animator is None and not args.face:
        raise ConfigError("nothing to export: give --animator sadtalker and/or --face")
    out_dir = Path(args.output)
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"{out_dir} exists and is not a folder; -o takes a folder for the .onnx files")
    progress = ProgressBar(err, enabled=not args.quiet, units={"export": "graphs"})
    specs = []
    if args.animator is not None:
        if args.animator != "sadtalker":
            raise ConfigError(f"ONNX export is implemented for the sadtalker animator, not {args.animator!r} "
                              "(the viseme animator has no network)")
        from ..plugins import get_registry

        settings = parse_settings(args.set or [])
        raw = {**settings.pop("", {}), **settings.pop("animator", {})}
        if settings:
            raise ConfigError("--set takes animator options here (e.g. --set animator.size=512)")
        animator = get_registry().create("animator", "sadtalker", typed_config("animator", "sadtalker", raw))
        if animator.runtime != "torch":
            raise ConfigError("export from the torch networks: leave animator.runtime at 'torch'")
        specs += sadtalker_graphs(animator.networks(), size=animator.size,
                                  only=tuple(g for g in only if g in SADTALKER_GRAPHS) if only else None)
    if args.face:
        from ..onnx.face import load_face_networks

        names = tuple(g for g in (only or FACE_GRAPHS) if g in FACE_GRAPHS)
        specs += face_graphs(load_face_networks(names, cache_dir=args.cache_dir), only=names)
    try:
        results = export_graphs(specs, out_dir, check=not args.no_check, progress=progress,
                                meta={"animator": args.animator})
        if variants:
            from ..onnx.quantize import quantize_graph
            from ..onnx.runtime import variant_file

            for r in results:
                for v in variants:
                    calib = None
                    if v == "int8s":
                        spec = next(s for s in specs if s.name == r.name)
                        calib = [{k: t.detach().numpy() for k, t in spec.inputs.items()}]
                    quantize_graph(out_dir / r.file, variant_file(out_dir, r.name, v), v, calibration=calib)
    finally:
        progress.close()
    for r in results:
        out.write(f"{out_dir / r.file}  {r.bytes / 1e6:7.1f} MB  max |onnx - torch| {r.max_abs_diff:.2e}\n")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export networks (ONNX)")
    esub = p.add_subparsers(dest="export_format", metavar="FORMAT", required=True)
    o = esub.add_parser("onnx", help="export SadTalker and/or the face stack to ONNX graphs (opset 20)")
    o.add_argument("--animator", "-a", help="animator whose networks to export (sadtalker)")
    o.add_argument("--face", action="store_true", help="also export RetinaFace, AWing, ParseNet and GFPGAN")
    o.add_argument("--output", "-o", required=True, help="folder for the .onnx files and manifest.json")
    o.add_argument("--graphs", help="comma-separated graph names (default: all)")
    o.add_argument("--quantize", help="also write variants: int8, int8s (static), fp16 (comma-separated)")
    o.add_argument("--set", action="append", metavar="[animator.]KEY=VALUE", help="animator option, repeatable")
    o.add_argument("--cache-dir", help="weights cache directory (face networks)")
    o.add_argument("--no-check", action="store_true", help="skip running each graph against torch")
    o.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    o.set_defaults(func=cmd_onnx)
