"""Live streaming latency and throughput with the offline stack, against the targets of the "Live" issue.

Stack: faster-whisper (bundled tiny.en, no word timestamps: live turns do not use them) → LLM through the local OpenAI-protocol server (streamed
token by token, ``--token-delay`` seconds apart; its own time is reported apart) → piper (bundled
voice) per sentence → viseme animator at ``--size`` → (fragmented MP4 for ``say -o -``). All in one
process on this machine's cores; run it on a quiet machine for figures to quote:

    PYTHONPATH=src python bench/bench_stream.py [--size 512] [--minutes 10] [--turns 3]

Rows: cold and warm first frame of an answer to a spoken question, the pipeline's share of it
(ASR + TTS + animation, without the LLM's own first-sentence time), first decodable frame of
``say -o -``, steady frame rate while the next sentences are synthesised, real-time delivery
(late frames), barge-in to idle, and A/V drift over ``--minutes`` of stream.
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
from fractions import Fraction
from pathlib import Path

QUESTION = "What is the capital of France, and what is it famous for?"
ANSWER = ("Paris is the capital of France. It is famous for the Eiffel Tower. Its museums are among the best "
          "in the world. People also love its food. And the river Seine runs right through it.")
SAY = "Hello! This video is streamed while it is being made."

ROWS: list[tuple[str, str, str, str]] = []


def row(name: str, value: str, target: str = "", note: str = "") -> None:
    ROWS.append((name, value, target, note))
    print(f"  {name}: {value} {('(target ' + target + ')') if target else ''} {note}", flush=True)


def ms(seconds: float | None) -> str:
    return "—" if seconds is None else f"{1000 * seconds:.0f} ms"


def ask_turn(session, question) -> tuple:
    """Ask, consume chunks until the answer is over; returns (turn, chunks)."""
    turn = session.ask(question)
    chunks = []
    for chunk in session:
        chunks.append(chunk)
        if turn.done and not session.speaking:
            break
    return turn, chunks


def first_decodable_frame(avatar, text: str) -> float:
    """Seconds from giving ``text`` to the first video frame a PyAV reader decodes from the fMP4 pipe."""
    import av

    from talkinghead.streaming.fmp4 import write_fmp4

    read_end, write_end = os.pipe()
    result: dict[str, float] = {}

    def produce() -> None:
        with os.fdopen(write_end, "wb", buffering=0) as out:
            result["t0"] = time.perf_counter()
            write_fmp4(avatar.stream(text, chunk_frames=2), out)

    th = threading.Thread(target=produce)
    th.start()
    with os.fdopen(read_end, "rb", buffering=0) as pipe:
        container = av.open(pipe, format="mp4", options={"probesize": "32", "analyzeduration": "0"})
        for _ in container.decode(video=0):
            result.setdefault("first", time.perf_counter())
        container.close()
    th.join()
    return result["first"] - result["t0"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--image", default=str(Path(__file__).resolve().parents[1] / "assets" / "portrait_astronaut.png"))
    p.add_argument("--size", type=int, default=512, help="portrait size (long side)")
    p.add_argument("--turns", type=int, default=3, help="warm turns to take the median of")
    p.add_argument("--minutes", type=float, default=10.0, help="stream length of the drift check")
    p.add_argument("--token-delay", type=float, default=0.02, help="seconds between the LLM server's streamed pieces")
    args = p.parse_args(argv)

    from talkinghead import Avatar, ModelCache
    from talkinghead.testing.openai_server import OpenAIServer

    print(f"bench_stream: {os.cpu_count()} cores, portrait {args.size} px, 25 fps, 24 kHz, "
          f"LLM pieces every {args.token_delay * 1000:.0f} ms")
    with OpenAIServer(default_answer=ANSWER, stream_delay=args.token_delay) as server:
        cache = ModelCache()
        t0 = time.perf_counter()
        # word timestamps are not used by live turns: the ASR runs without them (faster)
        avatar = Avatar(args.image, tts="piper", animator="viseme", asr=("faster-whisper", {"word_timestamps": False}),
                        llm=("openai", {"base_url": server.base_url, "model": "local", "max_tokens": 400}),
                        max_size=args.size, cache=cache, max_answer_chars=400)
        question = avatar._use(avatar.tts).synthesize(QUESTION)  # loads piper too
        session = avatar.live(chunk_frames=2, turn_timeout=300)  # loads the animator, prepares the portrait
        t_ask = time.perf_counter()
        turn, _ = ask_turn(session, question)
        m = turn.metrics
        row("cold: Avatar() → first frame of the first answer", ms(t_ask - t0 + m.first_frame_s), "",
            f"loads + portrait preparation; of which the turn (ASR, LLM loads) {ms(m.first_frame_s)}")

        turns = [ask_turn(session, question)[0] for _ in range(args.turns)]
        assert all(t.status == "done" for t in turns), [(t.status, t.error) for t in turns]
        warm = [t.metrics for t in turns]
        med = lambda f: statistics.median(getattr(x, f) for x in warm)  # noqa: E731
        row("warm: end of question audio → first answer frame", ms(med("first_frame_s")), "",
            f"median of {args.turns}; includes the LLM's own first sentence")
        row("  of which ASR", ms(med("asr_s")))
        row("  of which LLM first sentence (reported apart)", ms(med("llm_first_sentence_s")), "",
            f"local server, pieces {args.token_delay * 1000:.0f} ms apart")
        row("  of which TTS of the first sentence", ms(med("tts_first_s")))
        row("warm: first frame without the LLM's own time", ms(med("pipeline_first_frame_s")), "≤ 400 ms")
        last = warm[-1]
        row("steady render rate during an answer (unpaced)", f"{last.render_fps:.1f} fps", "≥ 25 fps",
            f"{last.frames} frames at {args.size} px while the next sentences are synthesised")
        row("delivery rate, first to last speech chunk (unpaced)", f"{last.steady_fps:.1f} fps")
        row("A/V drift over the answers", f"{sum(x.av_drift_samples for x in warm)} samples", "0")
        session.close()

        # real-time delivery of a whole answer
        paced = avatar.live(realtime=True, chunk_frames=1, turn_timeout=300)
        t, chunks = ask_turn(paced, question)
        speech = [c for c in chunks if c.kind == "speech"]
        row("real time: late frames in a paced answer", f"{t.metrics.late_frames} of {len(speech)}", "0",
            f"turn {t.status}; first frame {ms(t.metrics.first_frame_s)}")

        # barge-in while speaking, paced
        turn = paced.ask(question)
        started = None
        for chunk in paced:
            if chunk.kind == "speech" and started is None:
                started = time.perf_counter()
            if started is not None and time.perf_counter() - started > 1.0:
                break
        t_int = time.perf_counter()
        paced.interrupt()
        for chunk in paced:
            if chunk.kind != "speech":
                t_idle = time.perf_counter()
                break
        barge = turn.metrics.barge_in_ms
        row("barge-in → idle (stream time)", "—" if barge is None else f"{barge:.0f} ms", "≤ 100 ms",
            f"turn {turn.status}; wall time from interrupt() to the first idle chunk {ms(t_idle - t_int)}")
        paced.close()

        # say -o -
        first_decodable_frame(avatar, SAY)  # warm up
        times = [first_decodable_frame(avatar, SAY) for _ in range(args.turns)]
        row("warm: say -o - → first decodable frame", ms(statistics.median(times)), "≤ 250 ms",
            "fMP4 read back from a pipe by PyAV")

    # drift over a long stream: speech segments pushed between idle stretches
    import numpy as np

    voice = avatar._use(avatar.tts).synthesize("This sentence is pushed into the stream again and again.")
    drift = avatar.live(chunk_frames=25)
    spf = drift.clock.samples_per_frame
    total = int(args.minutes * 60 * 25)
    frames = samples = 0
    pts_ok = True
    t0 = time.perf_counter()
    next_push = 50
    while frames < total:
        if frames >= next_push:
            for piece in np.array_split(voice.samples, 17):
                drift.push_speech(piece, voice.sample_rate)
            drift.end_speech()
            next_push = frames + 250
        chunk = next(drift)
        pts_ok &= chunk.first_frame == frames and chunk.pts == Fraction(frames, 25) and chunk.first_sample == samples
        frames += chunk.n_frames
        samples += len(chunk.samples)
    drift.close()
    row(f"A/V drift over {args.minutes:g} min of stream", f"{samples - frames * spf} samples", "0",
        f"{frames} frames, every chunk's pts = frame/fps: {pts_ok}; rendered in {time.perf_counter() - t0:.0f} s")

    print()
    print("| measure | value | target | note |")
    print("| --- | --- | --- | --- |")
    for r in ROWS:
        print("| " + " | ".join(r) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
