"""faster-whisper's encoder window: the standard 30 s window against the short window (10 s default).

Every sentence of the bank's speech set (40 phonetically rich sentences) and four short questions
is spoken once by piper and transcribed by the bundled tiny.en model (beam 5, VAD filter, no word
timestamps) twice in the same run: ``short_window_s=0`` (Whisper's 30 s window, faster-whisper's
own path) and the short window. It prints the word error rate of each (case, punctuation and US/UK
spelling ignored; numbers written as digits count as errors) and the median time per clip.

    PYTHONPATH=src python bench/bench_asr_window.py [--windows 0 10 8]
"""

from __future__ import annotations

import argparse
import difflib
import re
import statistics
import time
from pathlib import Path

QUESTIONS = ("What is your favourite planet?", "Hello, who are you?", "Tell me about Saturn.",
             "How do you reach me?")
_SPELLING = {"favorite": "favourite", "color": "colour"}


def words(text: str) -> list[str]:
    return [_SPELLING.get(w, w) for w in re.findall(r"[a-z0-9']+", text.lower())]


def errors(ref: str, hyp: str) -> int:
    ops = difflib.SequenceMatcher(a=words(ref), b=words(hyp), autojunk=False).get_opcodes()
    return sum(max(i2 - i1, j2 - j1) for op, i1, i2, j1, j2 in ops if op != "equal")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--windows", type=float, nargs="+", default=[0, 10])
    args = ap.parse_args(argv)

    from talkinghead.backends.faster_whisper import FasterWhisperASR
    from talkinghead.backends.piper import PiperTTS

    speech_set = Path(__file__).resolve().parents[1] / "src/talkinghead/backends/bank/speech_set.txt"
    sentences = [s.strip() for s in speech_set.read_text().splitlines() if s.strip() and not s.startswith("#")]
    sentences += list(QUESTIONS)
    tts = PiperTTS()
    tts.load()
    clips = [tts.synthesize(s) for s in sentences]
    seconds = statistics.mean(c.duration for c in clips)
    total_words = sum(len(words(s)) for s in sentences)
    base = FasterWhisperASR(short_window_s=0)
    base.load()
    print(f"bench_asr_window: {len(clips)} piper clips, {seconds:.1f} s on average, {total_words} words; tiny.en int8, "
          "beam 5, 2 threads\n")
    print("| window | word errors | WER % | median ms per clip | speed-up |")
    print("| --- | --- | --- | --- | --- |")
    first = None
    for w in args.windows:
        asr = FasterWhisperASR(short_window_s=w)
        asr._model = base._model  # one loaded model for every row
        asr.transcribe(clips[0])
        errs, times = 0, []
        for s, c in zip(sentences, clips, strict=True):
            t = time.perf_counter()
            text = asr.transcribe(c).text
            times.append((time.perf_counter() - t) * 1000)
            errs += errors(s, text)
        med = statistics.median(times)
        first = first or med
        name = "30 s (standard)" if not w else f"{w:g} s"
        print(f"| {name} | {errs} | {100 * errs / total_words:.1f} | {med:.0f} | {first / med:.2f}× |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
