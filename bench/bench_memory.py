"""Peak memory (RSS) of hostile-but-fair inputs on the default stack, each in its own process.

Every case runs the real command line (``talkinghead say`` / ``speak`` with the default stack:
piper → viseme → mp4) in a fresh subprocess; its peak resident set size comes from the kernel's
accounting of that child (``wait4``), so nothing else in this process counts. The target is
1.5 GB for every input inside the documented limits (5,000 characters of text, 600 s of audio,
64 megapixels); inputs over the limits must be refused, quickly and in little memory.

    PYTHONPATH=src python bench/bench_memory.py [--only word,flac3h] [--keep DIR]

Inputs are generated first (not measured): the 4,990-character run-on sentence, the
5,000-character single word, 5,000 characters of ordinary prose, a 3-hour silent FLAC, a 5-hour
FLAC, 600 s of piper speech, 600 s of 96 kHz stereo speech, and a 64-megapixel (8000×8000) JPEG
portrait.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PORTRAIT = ROOT / "assets" / "portrait_astronaut.png"
TARGET_MB = 1500.0

PROSE = (
    "The station turned slowly above the clouds, and the morning light crept across the panels. "
    "Nobody spoke for a while. Then the commander checked the oxygen readings, nodded, and asked "
    "for the next item on the list! Was it the radio test, or the water pump? "
)


def _run_on(n: int) -> str:
    words = "the astronaut walked slowly across the grey dust and looked back at the small blue planet".split()
    out, i = [], 0
    while len(" ".join(out)) < n:
        out.append(words[i % len(words)])
        i += 1
    return " ".join(out)[:n].rstrip()


def _flac(path: Path, seconds: float, rate: int = 16000, tone_every: float = 0.0) -> None:
    import numpy as np
    import soundfile as sf

    block_s = 60
    block = np.zeros(rate * block_s, np.float32)
    if tone_every:
        burst = 0.2 * np.sin(2 * np.pi * 220 * np.arange(rate // 2) / rate)
        block[: len(burst)] = burst
    with sf.SoundFile(path, "w", samplerate=rate, channels=1, format="FLAC", subtype="PCM_16") as f:
        for _ in range(int(seconds // block_s)):
            f.write(block)


def _speech_wav(path: Path, seconds: float, *, rate: int | None = None, channels: int = 1) -> None:
    import numpy as np
    import soundfile as sf

    from talkinghead.backends.piper import PiperTTS

    audio = PiperTTS().synthesize(PROSE)
    if rate and rate != audio.sample_rate:
        audio = audio.resample(rate)
    reps = int(np.ceil(seconds * audio.sample_rate / len(audio.samples)))
    samples = np.tile(audio.samples, reps)[: int(seconds * audio.sample_rate)]
    data = np.repeat(samples[:, None], channels, axis=1) if channels > 1 else samples
    sf.write(path, data, audio.sample_rate, subtype="PCM_16")


def _big_portrait(path: Path, side: int = 8000) -> None:
    from PIL import Image

    with Image.open(PORTRAIT) as im:
        im.convert("RGB").resize((side, side), Image.BICUBIC).save(path, quality=90)


def cases(work: Path) -> list[tuple[str, str, list[str], object]]:
    """(key, description, CLI arguments, input maker or None)."""
    text = lambda s: ["say", "-i", str(PORTRAIT), "-t", s]  # noqa: E731
    speak = lambda a: ["speak", "-i", str(PORTRAIT), "-a", str(a)]  # noqa: E731
    return [
        ("runon", "4,990-char run-on sentence (no punctuation)", text(_run_on(4990)), None),
        ("word", "5,000-char single word", text("a" * 5000), None),
        ("prose", "5,000 chars of ordinary prose", text((PROSE * 30)[:5000].rstrip()), None),
        ("flac3h", "3 h silent FLAC (over the 600 s limit)", speak(work / "silent3h.flac"),
         lambda: _flac(work / "silent3h.flac", 3 * 3600)),
        ("flac5h", "5 h FLAC, a tone burst a minute (over the limit)", speak(work / "tones5h.flac"),
         lambda: _flac(work / "tones5h.flac", 5 * 3600, tone_every=60)),
        ("speech600", "600 s of speech, 22.05 kHz mono WAV", speak(work / "speech600.wav"),
         lambda: _speech_wav(work / "speech600.wav", 600)),
        ("speech600hi", "600 s of speech, 96 kHz stereo WAV", speak(work / "speech600-96k.wav"),
         lambda: _speech_wav(work / "speech600-96k.wav", 600, rate=96000, channels=2)),
        ("image64mp", "64-megapixel portrait (8000×8000 JPEG), one sentence",
         ["say", "-i", str(work / "portrait64mp.jpg"), "-t", "Hello from a very large photograph."],
         lambda: _big_portrait(work / "portrait64mp.jpg")),
    ]


def measure(argv: list[str], out: Path) -> tuple[int, float, float, str]:
    """Run the CLI in a child; return (exit code, peak RSS MB, wall s, last stderr line)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    t = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "talkinghead.cli", *argv, "-o", str(out), "-q"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
    )
    err = b""
    assert proc.stderr is not None
    for chunk in iter(lambda: proc.stderr.read(65536), b""):
        err = (err + chunk)[-4000:]
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t
    peak_mb = usage.ru_maxrss / 1024 if sys.platform != "darwin" else usage.ru_maxrss / 2**20
    lines = [ln for ln in err.decode("utf-8", "replace").splitlines() if ln.strip()]
    return proc.returncode, peak_mb, wall, (lines[-1] if lines else "")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", help="comma-separated case keys (default: all)")
    p.add_argument("--keep", help="generate the inputs into this folder and keep them (reused if present)")
    args = p.parse_args(argv)
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="th-bench-memory-"))
    work.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(ROOT / "src"))
    chosen = set(args.only.split(",")) if args.only else None
    rows = []
    try:
        for key, what, cli, make in cases(work):
            if chosen is not None and key not in chosen:
                continue
            if make is not None and not Path(cli[-1] if cli[0] == "speak" else cli[2]).exists():
                make()
            out = work / f"out-{key}.mp4"
            code, peak, wall, last = measure(cli, out)
            result = "rendered" if code == 0 else f"exit {code}: {last[:110]}"
            rows.append((key, what, result, peak, wall))
            print(f"  {key}: exit {code}, peak {peak:.0f} MB, {wall:.1f} s", file=sys.stderr, flush=True)
            out.unlink(missing_ok=True)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(f"peak RSS per input, each in its own `talkinghead` process (target ≤ {TARGET_MB:.0f} MB)")
    print("| input | result | peak RSS MB | ≤ 1.5 GB | wall s |")
    print("| --- | --- | ---: | :---: | ---: |")
    for key, what, result, peak, wall in rows:
        print(f"| {what} | {result} | {peak:.0f} | {'yes' if peak <= TARGET_MB else '**NO**'} | {wall:.1f} |")
    return 0 if all(r[3] <= TARGET_MB for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
