"""The report's picture: per-frame curves drawn with Pillow (no plotting library needed).

Panels, top to bottom: mouth aperture against the speech envelope (both scaled to 0–1), eye
openness with blinks shaded, head roll / yaw / pitch, face SSIM to the reference and sharpness
ratio, and the frame-to-frame change with frozen stretches shaded.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["plot_report"]

WIDTH, PANEL, MARGIN_L, MARGIN_R, GAP = 1100, 150, 70, 20, 34
COLOURS = {
    "aperture": (214, 39, 40),
    "envelope": (31, 119, 180),
    "openness": (44, 160, 44),
    "roll": (148, 103, 189),
    "yaw": (255, 127, 14),
    "pitch": (23, 190, 207),
    "ssim": (31, 119, 180),
    "sharpness": (214, 39, 40),
    "difference": (80, 80, 80),
}


def _scaled(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, np.float64)
    ok = np.isfinite(v)
    if not ok.any():
        return v
    lo, hi = np.nanmin(v), np.nanmax(v)
    return (v - lo) / (hi - lo) if hi > lo else np.where(ok, 0.5, np.nan)


def plot_report(report) -> PIL.Image.Image:  # noqa: F821
    """Draw ``report`` (an :class:`~talkinghead.eval.EvalReport`) as an RGB image."""
    from PIL import Image, ImageDraw, ImageFont

    c = report.curves
    fps, n = c.fps, c.n_frames
    ref_sharp = c.reference_sharpness if c.reference_sharpness and c.reference_sharpness > 0 else np.nan
    panels: list[tuple[str, Sequence[tuple[str, np.ndarray]], tuple[float, float] | None, list]] = [
        (
            "mouth aperture vs speech (0-1)",
            [("aperture", _scaled(c["aperture"])), ("envelope", _scaled(report.envelope))],
            (0.0, 1.0),
            [],
        ),
        ("eye openness (blinks shaded)", [("openness", c["openness"])], None, report.blinks),
        (
            "head: roll (deg/10), yaw, pitch",
            [("roll", c["roll"] / 10), ("yaw", c["yaw"]), ("pitch", c["pitch"])],
            None,
            [],
        ),
        (
            "face SSIM to reference / sharpness ratio",
            [("ssim", c["ssim"]), ("sharpness", c["sharpness"] / ref_sharp)],
            None,
            [],
        ),
        ("frame change (frozen shaded)", [("difference", c["difference"])], None, report.frozen),
    ]
    height = GAP + len(panels) * (PANEL + GAP) + 20
    image = Image.new("RGB", (WIDTH, height), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    title = f"{report.data.get('video', '')}  ({n} frames, {fps:g} fps)"
    lips = report.data.get("lip_sync", {})
    if lips.get("r") is not None:
        title += f"   lip sync r={lips['r']:.2f} lag={lips['lag_frames']}"
    draw.text((MARGIN_L, 6), title, fill="black", font=font)
    plot_w = WIDTH - MARGIN_L - MARGIN_R
    for k, (label, series, yrange, shaded) in enumerate(panels):
        top = GAP + k * (PANEL + GAP)
        box = (MARGIN_L, top, WIDTH - MARGIN_R, top + PANEL)
        for a, b in shaded:
            x0 = MARGIN_L + plot_w * a / max(n - 1, 1)
            x1 = MARGIN_L + plot_w * b / max(n - 1, 1)
            draw.rectangle((x0, top, x1, top + PANEL), fill=(235, 235, 235))
        draw.rectangle(box, outline=(120, 120, 120))
        values = np.concatenate([np.asarray(v, np.float64)[np.isfinite(v)] for _, v in series] or [np.zeros(0)])
        lo, hi = yrange if yrange else ((float(values.min()), float(values.max())) if values.size else (0.0, 1.0))
        if hi <= lo:
            lo, hi = lo - 0.5, hi + 0.5
        for name, v in series:
            v = np.asarray(v, np.float64)
            points: list[tuple[float, float]] = []
            for i, y in enumerate(v):
                if not np.isfinite(y):
                    if len(points) > 1:
                        draw.line(points, fill=COLOURS[name], width=2)
                    points = []
                    continue
                x = MARGIN_L + plot_w * i / max(n - 1, 1)
                points.append((x, top + PANEL - PANEL * (y - lo) / (hi - lo)))
            if len(points) > 1:
                draw.line(points, fill=COLOURS[name], width=2)
        draw.text((MARGIN_L + 4, top - 14), label, fill="black", font=font)
        legend_x = WIDTH - MARGIN_R - 10
        for name, _ in reversed(series):
            legend_x -= 8 * len(name) + 24
            draw.line((legend_x, top - 8, legend_x + 14, top - 8), fill=COLOURS[name], width=3)
            draw.text((legend_x + 18, top - 14), name, fill="black", font=font)
        draw.text((4, top - 4), f"{hi:.3g}", fill=(90, 90, 90), font=font)
        draw.text((4, top + PANEL - 10), f"{lo:.3g}", fill=(90, 90, 90), font=font)
    # time axis (seconds)
    bottom = GAP + len(panels) * (PANEL + GAP) - GAP + 4
    duration = n / fps
    step = max(1, int(np.ceil(duration / 10)))
    for t in range(0, int(duration) + 1, step):
        x = MARGIN_L + plot_w * (t * fps) / max(n - 1, 1)
        draw.text((x - 4, bottom), f"{t}s", fill=(90, 90, 90), font=font)
    return image
