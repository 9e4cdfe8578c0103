"""Accuracy and cost of faster-whisper's beam width on short piper-spoken questions.

Each sentence is spoken ``--renditions`` times by piper at its default rate (its sampling noise
makes every rendition different; ``--vary-rate`` also spreads the speaking rate over 0.85–1.15),
then every rendition is transcribed
by the bundled tiny.en model with greedy decoding (beam 1) and with beam search (beam 5), in the
same run. A transcript counts as right when its words equal the sentence's (case, punctuation and
US/UK spelling ignored).

    PYTHONPATH=src python bench/bench_asr_beam.py [--renditions 30] [--vary-rate]
"""

from __future__ import annotations

import argparse
import re
import statistics
import time

SENTENCES = (
    "My favourite colour is teal.",
    "What is the capital of France?",
    "Can you tell me a joke about cats?",
)
_SPELLING = {"favorite": "favourite", "color": "colour"}


def words(text: str) -> list[str]:
    return [_SPELLING.get(w, w) for w in re.findall(r"[a-z']+", text.lower())]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--renditions", type=int, default=30)
    p.add_argument("--beams", default="1,5")
    p.add_argument("--vary-rate", action="store_true", help="spread piper's length_scale over 0.85-1.15")
    p.add_argument("--sentences", type=int, default=len(SENTENCES), help="use the first N sentences")
    args = p.parse_args(argv)

    from talkinghead.backends.faster_whisper import FasterWhisperASR
    from talkinghead.backends.piper import PiperTTS

    beams = [int(b) for b in args.beams.split(",")]
    asrs = {b: FasterWhisperASR(beam_size=b) for b in beams}
    for asr in asrs.values():
        asr.load()
    rows = []
    voices: dict[float | None, PiperTTS] = {}
    for sentence in SENTENCES[: args.sentences]:
        right = {b: 0 for b in beams}
        seconds: dict[int, list[float]] = {b: [] for b in beams}
        heard_wrong: dict[int, list[str]] = {b: [] for b in beams}
        for i in range(args.renditions):
            scale = 0.85 + 0.3 * i / max(1, args.renditions - 1) if args.vary_rate else None
            tts = voices.setdefault(scale, PiperTTS(length_scale=scale))
            audio = tts.synthesize(sentence)
            for b in beams:  # same rendition for every beam width
                t = time.perf_counter()
                text = asrs[b].transcribe(audio).text
                seconds[b].append(time.perf_counter() - t)
                if words(text) == words(sentence):
                    right[b] += 1
                else:
                    heard_wrong[b].append(text.strip())
        for b in beams:
            wrong = "; ".join(sorted(set(heard_wrong[b])))[:90]
            rows.append((sentence, b, right[b], args.renditions, statistics.median(seconds[b]), wrong))
    print(f"faster-whisper tiny.en int8, {asrs[beams[0]].cpu_threads} threads; {args.renditions} piper renditions each")
    print("| sentence | beam | right | median s / transcription | misheard as |")
    print("| --- | ---: | ---: | ---: | --- |")
    for sentence, b, r, n, sec, wrong in rows:
        print(f"| {sentence} | {b} | {r}/{n} | {sec:.3f} | {wrong} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
