"""Make the viseme animator's gallery images for ``docs/viseme.md``.

Run: ``PYTHONPATH=src python bench/viseme_gallery.py [--out docs/images]``. Writes

* ``viseme_gallery_shapes.png`` — one row per portrait, one column per mouth shape;
* ``viseme_gallery_emotions.png`` — one row per portrait, one column per emotion (and a blink);
* ``viseme_gallery_speech.png`` — every 3rd frame of a sentence spoken with ``emotion="auto"``;
* ``viseme_still.png`` — the README's still (the portrait and a frame of speech, side by side).

Portraits: the three bundled public-domain photos and variants made from them (see
``tests/_viseme_measure.portrait_variant``). Every tile is a real rendered frame (the drive row
of one pose, rendered by the same renderer as a video), cropped to the face.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

SHAPES = [
    ("rest", {}),
    ("/a/", {"jaw": 0.9, "spread": 0.15}),
    ("/i/", {"jaw": 0.3, "spread": 1.0, "lift": 0.35}),
    ("/u/", {"jaw": 0.3, "round": 1.0}),
    ("/o/", {"jaw": 0.6, "round": 0.8}),
    ("/m b p/", {"press": 1.0}),
    ("/f v/", {"jaw": 0.1, "tuck": 1.0, "lift": 0.5}),
    ("/th/", {"jaw": 0.25, "spread": 0.2, "tongue": 1.0}),
]
PORTRAITS = [
    ("astronaut", "colour, open smile"),
    ("astronaut:grey", "greyscale"),
    ("astronaut:side_light", "side light"),
    ("astronaut:blur", "blurred"),
    ("hopper", "glasses, closed lips"),
    ("hopper:sepia", "sepia"),
    ("mendeleev", "beard, greyscale photo"),
]


def tiles_sheet(rows: list[list[np.ndarray]], row_labels: list[str], col_labels: list[str]) -> np.ndarray:
    import cv2

    h = max(t.shape[0] for r in rows for t in r)
    out_rows = []
    head = np.full((18, sum(t.shape[1] for t in rows[0]) + 150, 3), 255, np.uint8)
    x = 150
    for label, t in zip(col_labels, rows[0]):
        cv2.putText(head, label, (x + 4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
        x += t.shape[1]
    out_rows.append(head)
    for label, r in zip(row_labels, rows):
        side = np.full((h, 150, 3), 255, np.uint8)
        for k, part in enumerate(label.split("\n")):
            cv2.putText(side, part, (4, 16 + 15 * k), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
        out_rows.append(np.concatenate([side] + [np.pad(t, ((0, h - t.shape[0]), (0, 0), (0, 0))) for t in r], axis=1))
    return np.concatenate(out_rows, axis=0)


def main() -> None:
    import cv2
    from _viseme_measure import portrait_variant
    from bench_viseme import PORTRAITS as BUNDLED

    from talkinghead.backends.piper import PiperTTS
    from talkinghead.backends.viseme import VisemeAnimator
    from talkinghead.backends.viseme.render import FrameRenderer
    from talkinghead.backends.viseme.timeline import CHANNELS, compute_drive
    from talkinghead.expression import Expression, ExpressionTrack
    from talkinghead.io import load_image
    from talkinghead.values import Audio, Portrait

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    ap.add_argument("--tile", type=int, default=112, help="tile height in pixels")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    photos = {name: load_image(path).image for name, path in BUNDLED.items()}
    animator = VisemeAnimator(seed=1)
    channel = {n: i for i, n in enumerate(CHANNELS)}

    def crop(frame, lm):
        """A square around the face (landmarks' box + 12 %, a little low: mouth and chin in view), tile-sized."""
        (x0, y0), (x1, y1) = lm.min(axis=0), lm.max(axis=0)
        side = 1.12 * max(x1 - x0, y1 - y0)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2 + 0.04 * side
        m = np.float32(
            [
                [args.tile / side, 0, args.tile / 2 - cx * args.tile / side],
                [0, args.tile / side, args.tile / 2 - cy * args.tile / side],
            ]
        )
        return cv2.warpAffine(frame, m, (args.tile, args.tile), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)

    def pose_frame(prepared, renderer, pose):
        row = np.zeros(len(CHANNELS))
        for k, v in pose.items():
            row[channel[k]] = v
        frame = prepared.image.copy()
        renderer.render(frame, row)
        return crop(frame, prepared.face.landmarks)

    silence = Audio(np.zeros(16000, np.float32), 16000)
    emotions = ["neutral", "happy", "sad", "concerned", "surprised"]
    shape_rows, emotion_rows, labels = [], [], []
    for name, what in PORTRAITS:
        base, _, kind = name.partition(":")
        image = portrait_variant(photos[base], kind) if kind else photos[base]
        prepared = animator.prepare(Portrait(image))
        renderer = FrameRenderer(prepared.image, prepared.fields, prepared.look)
        shape_rows.append([pose_frame(prepared, renderer, pose) for _, pose in SHAPES])
        row = []
        for emotion in emotions:
            track = ExpressionTrack.constant(Expression.named(emotion))
            drive = compute_drive(silence, 20, blink_rate=0, head_motion=0, gaze=0, expression=track)
            frame = prepared.image.copy()
            renderer.render(frame, drive.values[-1])
            row.append(crop(frame, prepared.face.landmarks))
        row.append(pose_frame(prepared, renderer, {"blink": 1.0}))
        emotion_rows.append(row)
        labels.append(f"{base}\n{what}")
    shapes = tiles_sheet(shape_rows, labels, [s for s, _ in SHAPES])
    cv2.imwrite(str(args.out / "viseme_gallery_shapes.png"), shapes[:, :, ::-1])
    feelings = tiles_sheet(emotion_rows, labels, emotions + ["blink"])
    cv2.imwrite(str(args.out / "viseme_gallery_emotions.png"), feelings[:, :, ::-1])
    # A spoken sentence, emotion="auto": a happy sentence, then a sad one.
    text = "I am so happy to see you again! But I am sorry, the news is sad."
    speech = replace(PiperTTS(noise_scale=0.0, noise_w_scale=0.0).synthesize(text), text=text)
    for base, name in (
        ("astronaut", "viseme_gallery_speech.png"),
        ("hopper", "viseme_gallery_speech_hopper.png"),
        ("mendeleev", "viseme_gallery_speech_mendeleev.png"),
    ):
        prepared = animator.prepare(Portrait(photos[base]))
        frames = np.concatenate([c.frames for c in animator.animate(prepared, speech, fps=20)])
        strip = [crop(frames[i], prepared.face.landmarks) for i in range(0, len(frames), 3)][:30]
        rows = [strip[i : i + 10] for i in range(0, len(strip) - 9, 10)]
        sheet = tiles_sheet(
            rows, [f"frames\n{30 * k}-{30 * k + 27}" for k in range(len(rows))], [str(3 * i) for i in range(10)]
        )
        cv2.imwrite(str(args.out / name), sheet[:, :, ::-1])
        if base == "astronaut":
            i = int(np.argmax([np.abs(f.astype(np.int16) - prepared.image).sum() for f in frames[: len(frames) // 2]]))
            still = np.concatenate([prepared.image[:280, 100:340], frames[i][:280, 100:340]], axis=1)
            cv2.imwrite(str(args.out / "viseme_still.png"), still[:, :, ::-1])
    print(f"wrote the gallery to {args.out}")


if __name__ == "__main__":
    main()
