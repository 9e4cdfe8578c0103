"""Per-stage latency of one spoken conversational turn with the offline stack.

ASR faster-whisper (bundled tiny.en, int8, 2 threads) → LLM via the local OpenAI-protocol server
(no model: measures the client/protocol overhead only) → TTS piper → animation (``viseme`` when
registered, else FakeAnimator, labelled) → mp4 encoding; plus the time to the first video frame.

    PYTHONPATH=src python bench/bench_convo.py [--turns 3] [--image assets/portrait_astronaut.png]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

QUESTION = "What is the capital of France, and what is it famous for?"
ANSWER = "Paris is the capital of France. It is famous for the Eiffel Tower, its museums and its food."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--image", default=str(Path(__file__).resolve().parents[1] / "assets" / "portrait_astronaut.png"))
    parser.add_argument("--fps", type=float, default=20)
    args = parser.parse_args()

    from talkinghead.backends.faster_whisper import FasterWhisperASR
    from talkinghead.backends.mp4 import Mp4Writer
    from talkinghead.backends.openai.llm import OpenAILLM
    from talkinghead.backends.piper import PiperTTS
    from talkinghead.conversation import Conversation
    from talkinghead.io import load_image
    from talkinghead.plugins import create_backend, get_registry
    from talkinghead.testing import FakeAnimator
    from talkinghead.testing.openai_server import OpenAIServer

    if "viseme" in get_registry().names("animator"):
        animator, animator_label = create_backend("animator", "viseme"), "viseme"
    else:
        animator, animator_label = FakeAnimator(), "FakeAnimator (viseme not registered in this branch)"

    t = time.perf_counter()
    asr, tts, writer = FasterWhisperASR(), PiperTTS(), Mp4Writer()
    for b in (asr, tts, writer, animator):
        b.load()
    load_s = time.perf_counter() - t
    portrait = load_image(args.image)
    t = time.perf_counter()
    prepared = animator.prepare(portrait)
    prepare_s = time.perf_counter() - t
    question_audio = tts.synthesize(QUESTION)

    rows: dict[str, list[float]] = {k: [] for k in ("asr", "llm", "tts", "animate+encode", "first frame", "turn total")}
    with OpenAIServer(default_answer=ANSWER) as server, tempfile.TemporaryDirectory() as tmp:
        llm = OpenAILLM(base_url=server.base_url, model="local")
        llm.load()
        conv = Conversation()
        for i in range(args.turns):
            t0 = time.perf_counter()
            text = asr.transcribe(question_audio).text
            t1 = time.perf_counter()
            answer = llm.complete(conv.messages(text))
            t2 = time.perf_counter()
            audio = tts.synthesize(answer)
            t3 = time.perf_counter()
            first: list[float] = []

            def frames():
                for chunk in animator.animate(prepared, audio, fps=args.fps):
                    if not first:
                        first.append(time.perf_counter())
                    yield chunk

            video = writer.write(frames(), audio, Path(tmp) / f"turn{i}.mp4", fps=args.fps)
            t4 = time.perf_counter()
            conv.add(text, answer)
            for k, v in (("asr", t1 - t0), ("llm", t2 - t1), ("tts", t3 - t2), ("animate+encode", t4 - t3),
                         ("first frame", first[0] - t0), ("turn total", t4 - t0)):
                rows[k].append(v)
    print(f"one turn: question {question_audio.duration:.1f} s of speech, answer {audio.duration:.1f} s "
          f"({video.n_frames} frames {video.width}x{video.height} at {args.fps:g} fps); animator: {animator_label}")
    print(f"model loading {load_s:.2f} s, portrait preparation {prepare_s:.2f} s (once per process / portrait)")
    print(f"{'stage':<16}{'median s':>10}{'min s':>10}")
    for k, v in rows.items():
        print(f"{k:<16}{statistics.median(v):>10.3f}{min(v):>10.3f}")
    print(f"(median of {args.turns} turns; 'first frame' = from the question audio to the first animated frame)")


if __name__ == "__main__":
    main()
