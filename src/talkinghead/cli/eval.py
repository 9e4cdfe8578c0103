"""``talkinghead eval VIDEO``: a JSON quality report and a PNG of the per-frame curves.

``--batch`` takes a folder and evaluates every video in it, writing each video's report and plot
and a summary (one JSON line per video, then the means) to ``eval-summary.jsonl``.

Exit codes: 0 done (flags are in the report, not in the exit code), 1 the video or the options
cannot be used.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path
from typing import Any, TextIO

from ..errors import ConfigError, TalkingHeadError

VIDEO_SUFFIXES = (".mp4", ".webm", ".mov", ".mkv", ".avi", ".m4v")

#: Numbers averaged over a folder in the summary (dotted paths into each report).
SUMMARY_KEYS = (
    "lip_sync.r",
    "lip_sync.lag_frames",
    "av.length_difference_ms",
    "blinks.per_minute",
    "head_motion.speed_mean",
    "identity.ssim_mean",
    "identity.psnr_mean",
    "identity.drift_ssim",
    "sharpness.ratio_to_reference",
    "frozen.longest_s",
    "syncnet.lse_d",
    "syncnet.lse_c",
)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _outputs(video: Path, args: argparse.Namespace, many: bool) -> tuple[Path, Path | None]:
    folder = Path(args.output_dir) if args.output_dir else video.parent
    if not many and args.json:
        json_path = Path(args.json)
    else:
        json_path = folder / f"{video.stem}.eval.json"
    if args.no_plot:
        return json_path, None
    plot = Path(args.plot) if (not many and args.plot) else folder / f"{video.stem}.eval.png"
    return json_path, plot


def _one(video: Path, args: argparse.Namespace, out: TextIO, many: bool) -> dict[str, Any]:
    from ..eval import evaluate

    report = evaluate(
        video,
        reference=args.reference,
        audio=args.audio,
        syncnet=args.syncnet,
        max_lag=args.max_lag,
        device=args.device,
    )
    json_path, plot_path = _outputs(video, args, many)
    for p in (json_path, plot_path):
        if p is not None and p.resolve() in {video.resolve()} | (
            {Path(args.reference).resolve()} if args.reference else set()
        ):
            raise ConfigError(f"{p} is an input; choose another output path")
    json_path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(json_path, (report.to_json(curves=args.curves) + "\n").encode())
    if plot_path is not None:
        import io

        buf = io.BytesIO()
        report.plot().save(buf, format="PNG")
        _write_atomic(plot_path, buf.getvalue())
    data = json.loads(report.to_json())
    lips = data.get("lip_sync", {})
    line = f"{video}: lip sync r={_fmt(lips.get('r'))} lag={lips.get('lag_frames')} frames"
    line += (
        f", blinks/min={_fmt(data['blinks'].get('per_minute'))}, face SSIM={_fmt(data['identity'].get('ssim_mean'))}"
    )
    if "syncnet" in data:
        line += f", LSE-D={_fmt(data['syncnet'].get('lse_d'))} LSE-C={_fmt(data['syncnet'].get('lse_c'))}"
    out.write(line + f"  -> {json_path}" + (f", {plot_path}" if plot_path else "") + "\n")
    for flag in data.get("flags", []):
        out.write(f"  ! {flag}\n")
    return data


def _fmt(v: Any) -> str:
    return "n/a" if v is None else f"{v:.3g}" if isinstance(v, float) else str(v)


def _get(data: dict[str, Any], dotted: str) -> float | None:
    for part in dotted.split("."):
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data if isinstance(data, (int, float)) and not isinstance(data, bool) else None


def cmd_eval(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    target = Path(args.video)
    if not args.batch:
        if target.is_dir():
            raise ConfigError(f"{target} is a folder; pass --batch to evaluate every video in it")
        _one(target, args, out, many=False)
        return 0
    if not target.is_dir():
        raise ConfigError(f"--batch takes a folder of videos; {target} is not a folder")
    videos = sorted(p for p in target.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES and not p.name.startswith("."))
    if not videos:
        raise ConfigError(f"no videos ({', '.join(VIDEO_SUFFIXES)}) in {target}")
    folder = Path(args.output_dir) if args.output_dir else target
    folder.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    failed = 0
    for video in videos:
        try:
            data = _one(video, args, out, many=True)
            rows.append({"video": str(video), **{k: _get(data, k) for k in SUMMARY_KEYS}, "flags": data["flags"]})
        except TalkingHeadError as exc:
            failed += 1
            err.write(f"error: {video}: {exc}\n")
            rows.append({"video": str(video), "error": {"type": type(exc).__name__, "message": str(exc)}})
    means = {}
    for key in SUMMARY_KEYS:
        values = [r[key] for r in rows if r.get(key) is not None and math.isfinite(r[key])]
        means[key] = sum(values) / len(values) if values else None
    summary = folder / "eval-summary.jsonl"
    lines = [json.dumps(r) for r in rows] + [json.dumps({"mean": means, "videos": len(videos), "failed": failed})]
    _write_atomic(summary, ("\n".join(lines) + "\n").encode())
    out.write(
        f"{len(videos)} videos, {failed} failed; means: "
        + ", ".join(f"{k}={_fmt(v)}" for k, v in means.items() if v is not None)
        + f"\nsummary: {summary}\n"
    )
    return 1 if failed else 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="measure a rendered video: lip sync, A/V offset, blinks, head motion, identity, sharpness, frozen frames",
        description="Write VIDEO.eval.json and VIDEO.eval.png (per-frame curves). Weights-free; LSE-C/LSE-D "
        "with --syncnet WEIGHTS. See docs/eval.md for what every number means.",
    )
    p.add_argument("video", metavar="VIDEO", help="the video (or, with --batch, a folder of videos)")
    p.add_argument("--reference", "-r", help="the portrait the video was made from (default: its first face)")
    p.add_argument("--audio", "-a", help="the speech it should say (adds the A/V offset against it)")
    p.add_argument("--batch", action="store_true", help="VIDEO is a folder: evaluate every video in it")
    p.add_argument("--json", help="report path (default VIDEO.eval.json; one video only)")
    p.add_argument("--plot", help="plot path (default VIDEO.eval.png; one video only)")
    p.add_argument("--output-dir", help="where reports and plots go (default: beside the videos)")
    p.add_argument("--no-plot", action="store_true", help="write no PNG")
    p.add_argument("--curves", action="store_true", help="include every per-frame curve in the JSON")
    p.add_argument("--max-lag", type=int, default=8, help="lip-sync lag search, ± frames (default 8)")
    p.add_argument("--syncnet", metavar="WEIGHTS", help="SyncNet weights (syncnet_v2.model) for LSE-C / LSE-D")
    p.add_argument("--device", default="cpu", help="torch device for SyncNet (default cpu)")
    p.set_defaults(func=cmd_eval)
