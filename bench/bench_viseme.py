"""Benchmark of the viseme animator: speed, and how its frames measure up (``--quality``).

Run: ``PYTHONPATH=src python bench/bench_viseme.py``. Renders 10 s of speech-like audio at
20 fps on each bundled portrait (its centred square crop, resized to each size: the astronaut is
head and shoulders, Hopper and Mendeleev are close-ups whose face fills the frame) and prints a
table: wall-clock frames per second, CPU time per frame, × real time and the size of the head
region warped every frame (a frame's cost grows with it). ``--render-threads 1 default`` times
one render thread against the default in the same run.

``--quality`` also renders piper speech (and steady vowels, and each emotion) on the bundled
portraits and variants made from them, reads the output frames with mediapipe's face mesh and
prints the measures the tests assert: lip-sync r and lag, /u/ vs /i/ mouth width and
width/height, /m/ aperture, happy/sad mouth-corner shift, head motion, greyscale chroma (for the
grey variants and photos that are greyscale themselves), and "r pixels": lip-sync without
landmarks (the mouth region's change from the portrait against the speech envelope).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

from talkinghead.backends.viseme import VisemeAnimator
from talkinghead.io import load_image
from talkinghead.testing import tone_speech
from talkinghead.values import Audio, PhonemeTiming, Portrait

ROOT = Path(__file__).resolve().parents[1]
PORTRAIT = ROOT / "assets" / "portrait_astronaut.png"
PORTRAITS = {
    "astronaut": PORTRAIT,  # head and shoulders: the face is about a third of the frame's width
    "hopper": ROOT / "assets" / "portrait_hopper.jpg",  # a close-up: the face fills the frame
    "mendeleev": ROOT / "assets" / "portrait_mendeleev.jpg",  # bearded, greyscale
}


def square(image: np.ndarray, size: int) -> np.ndarray:
    """The portrait's centred square crop, resized to ``size``²."""
    import cv2

    h, w = image.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    crop = image[top : top + side, left : left + side]
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA if side > size else cv2.INTER_CUBIC)


def speed(args) -> None:
    import cv2

    words = ["word"] * int(args.seconds / 0.4)
    audio = tone_speech(words)
    rows = []
    for threads, name in [(t, n) for n in args.speed_portraits for t in args.render_threads]:
        animator = VisemeAnimator(render_threads=threads)
        animator.load()
        base = load_image(PORTRAITS[name]).image
        for size in args.sizes:
            portrait = Portrait(square(base, size))
            t0 = time.perf_counter()
            prepared = animator.prepare(portrait)
            prep_s = time.perf_counter() - t0
            best_fps, best_first, best_cpu = 0.0, float("inf"), float("inf")
            for _ in range(args.repeats):
                t0, c0 = time.perf_counter(), time.process_time()
                n, first = 0, None
                for chunk in animator.animate(prepared, audio, fps=args.fps):
                    if first is None:
                        first = time.perf_counter() - t0
                    n += len(chunk)
                total, cpu = time.perf_counter() - t0, time.process_time() - c0
                best_fps, best_first = max(best_fps, n / total), min(best_first, first)
                best_cpu = min(best_cpu, cpu / n)
            x0, y0, x1, y1 = prepared.fields.roi
            rows.append(
                (
                    name,
                    animator.threads_for(prepared),
                    size,
                    prep_s,
                    best_first,
                    best_fps,
                    best_cpu,
                    best_fps / args.fps,
                    (x1 - x0) * (y1 - y0),
                )
            )
    print(
        f"viseme animator, {args.seconds:g} s of audio at {args.fps:g} fps, best of {args.repeats}; "
        f"{os.cpu_count()} CPUs visible, cv2 threads {cv2.getNumThreads()}"
    )
    print("each portrait's centred square crop; 'head ROI' is the region warped every frame (share of the frame)")
    print(
        f"{'portrait':>10} | {'threads':>7} | {'size':>5} | {'prepare s':>9} | {'first chunk ms':>14} | {'frames/s':>8} | "
        f"{'CPU ms/frame':>12} | {'× real time':>11} | head ROI"
    )
    print("-" * 114)
    for name, threads, size, prep_s, first, fps, cpu, rt, area in rows:
        print(
            f"{name:>10} | {threads:>7} | {size:>4}² | {prep_s:>9.2f} | {first * 1000:>14.1f} | {fps:>8.0f} | {cpu * 1000:>12.2f} | "
            f"{rt:>11.1f} | {area / 1000:.0f} kpx ({area / size**2:.0%})"
        )


def quality(args) -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    from _viseme_measure import (
        best_lag_correlation,
        face_landmarks,
        head_pose,
        mouth_measures,
        mouth_region_change,
        portrait_variant,
    )

    from talkinghead.backends.piper import PiperTTS

    fps = 20
    speech = PiperTTS(sentence_silence=0.4, noise_scale=0.0, noise_w_scale=0.0).synthesize(
        "Hello there, I am an astronaut. We flew to the station and back."
    )
    photos = {name: load_image(path).image for name, path in PORTRAITS.items()}

    def render(anim, prep, audio, **kw):
        return np.concatenate([c.frames for c in anim.animate(prep, audio, fps=fps, **kw)])

    def vowel(symbol):
        t = np.arange(int(1.2 * 16000)) / 16000
        x = 0.3 * np.sin(2 * np.pi * 150 * t) * (0.75 + 0.25 * np.sin(2 * np.pi * 3 * t))
        return Audio(x.astype(np.float32), 16000, phonemes=(PhonemeTiming(symbol, 0.0, 1.2),))

    header = (
        f"{'portrait':<20} | {'r':>5} | {'lag':>3} | {'r pixels':>8} | {'u/i width':>9} | {'u/i w/h':>7} | {'m aperture':>10} | "
        f"{'happy up':>8} | {'sad down':>8} | {'head x,y (IOD)':>14} | {'roll °':>6} | {'max chroma':>10}"
    )
    print("measured on the output frames with mediapipe's face mesh; distances in inter-ocular distances (IOD)")
    print(header)
    print("-" * len(header))
    for name in args.portraits:
        base, _, kind = name.partition(":")
        image = portrait_variant(photos[base], kind) if kind else photos[base]
        portrait = Portrait(image)
        anim = VisemeAnimator(seed=1)
        prep = anim.prepare(portrait)
        frames = render(anim, prep, speech)
        lm = face_landmarks(frames)
        envelope = speech.rms_envelope(fps, len(frames))
        r, lag = best_lag_correlation(mouth_measures(lm)["aperture"], envelope)
        # the same without landmarks: how much the mouth region changes from the portrait
        r_px, _ = best_lag_correlation(mouth_region_change(frames, prep), envelope)
        pose = head_pose(lm)
        iod = np.nanmedian(pose["iod"])
        spread = lambda a: np.nanpercentile(a, 95) - np.nanpercentile(a, 5)  # noqa: E731
        chroma = int(np.ptp(frames.astype(np.int16), axis=3).max())
        still = VisemeAnimator(seed=1, head_motion=0, blink_rate=0, gaze=0, emotion="neutral")
        m = {
            s: {
                k: np.nanmedian(v)
                for k, v in mouth_measures(face_landmarks(render(still, prep, vowel(s))[6:18])).items()
            }
            for s in ("u", "i", "m")
        }
        silence = Audio(np.zeros(16000, np.float32), 16000)
        corners = {
            e: np.nanmedian(mouth_measures(face_landmarks(render(still, prep, silence, emotion=e)[-3:]))["corners"])
            for e in ("neutral", "happy", "sad")
        }
        print(
            f"{name:<20} | {r:>5.2f} | {lag:>3d} | {r_px:>8.2f} | {m['u']['width'] / m['i']['width']:>9.2f} | "
            f"{(m['u']['width'] / m['u']['height']) / (m['i']['width'] / m['i']['height']):>7.2f} | "
            f"{m['m']['aperture']:>10.3f} | {corners['neutral'] - corners['happy']:>8.3f} | "
            f"{corners['sad'] - corners['neutral']:>8.3f} | "
            f"{spread(pose['x']) / iod:>6.3f},{spread(pose['y']) / iod:>6.3f} | {spread(pose['roll']):>6.2f} | "
            f"{chroma if kind == 'grey' or np.ptp(image.astype(np.int16), axis=2).max() == 0 else '-':>10}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--fps", type=float, default=20.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--speed-portraits", nargs="+", default=list(PORTRAITS), choices=list(PORTRAITS), help="portraits timed"
    )
    ap.add_argument(
        "--render-threads",
        nargs="+",
        type=lambda v: None if v == "default" else int(v),
        default=[None],
        help="render_threads values to time ('default': the animator's own choice per portrait)",
    )
    ap.add_argument("--quality", action="store_true", help="also measure the frames with face landmarks")
    ap.add_argument(
        "--portraits",
        nargs="+",
        default=[
            "astronaut",
            "astronaut:grey",
            "astronaut:side_light",
            "astronaut:blur",
            "hopper",
            "hopper:sepia",
            "hopper:grey",
            "mendeleev",
        ],
    )
    args = ap.parse_args()
    speed(args)
    if args.quality:
        print()
        quality(args)


if __name__ == "__main__":
    main()
