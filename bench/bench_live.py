"""N concurrent live sessions over WebRTC, on the offline stack (piper, viseme at 512², 25 fps).

For each session count it starts the server in a fresh process pinned to ``--cores`` CPU cores
(real uvicorn on 127.0.0.1, an OpenAI-protocol test LLM that answers at once, WebRTC on loopback),
warms the models with one session, then opens N sessions at once with aiortc clients (in this
process, on the same cores: they decode the VP8 video like a browser would). Each client waits
two seconds, then asks a typed question every ``--every`` seconds for ``--seconds`` seconds.

It reports, per configuration: frames received per second per session (target 25), late frames
(arriving more than 100 ms after their time on the stream's clock, counted from the first frame),
frames the server made late (its own clock), time from sending a question to the first frame of
the answer arriving (p50, p95) and, of that, the server's own time to make it (the turn's
``first_frame_s``; the rest is encoding, network and the client's jitter buffer), the server
process's CPU use (cores busy on average while the sessions ran) and its resident memory (after
the warm-up, and its peak). ``--spoken`` asks by voice instead (piper speech on the client's
microphone → VAD → faster-whisper), which adds the ASR's time.

    PYTHONPATH=src python bench/bench_live.py [--sessions 1,2,4] [--seconds 30] [--cores 2] [--spoken]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUESTIONS = ["What is your favourite planet?", "How far away is the moon?", "What do you eat in space?",
             "Do you ever feel lonely up there?"]
ANSWER = "That is a good question. I think about it a lot when I look out of the window at night."


def _serve(port_box, stop, rss_box, cores: list[int]) -> None:
    """The server process: the app on 127.0.0.1 until ``stop`` is set; reports its RSS peak."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, set(cores))
    from talkinghead.server import ServerSettings, create_app
    from talkinghead.testing.app_server import AppServer
    from talkinghead.testing.openai_server import OpenAIServer

    with tempfile.TemporaryDirectory() as data, OpenAIServer(default_answer=ANSWER) as llm:
        settings = ServerSettings(
            data_dir=data, max_live_sessions=16, rate_limit=10_000, rate_burst=10_000, ice_addresses=("127.0.0.1",),
            stages={"tts": "piper", "animator": "viseme", "writer": "mp4", "asr": "faster-whisper", "llm": "openai"},
            backend_options={"llm": {"openai": {"base_url": llm.base_url, "model": "bench", "api_key": "x"}}},
        )
        with AppServer(create_app(settings)) as server:
            port_box.value = server.port
            while not stop.wait(0.05):
                rss_box.value = max(rss_box.value, _rss_mb())


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


async def _session(url: str, avatar_id: str, seconds: float, every: float, spoken_audio) -> dict:
    from talkinghead.testing.live_client import RtcLiveClient

    client = RtcLiveClient(url, avatar_id, microphone=spoken_audio is not None)
    await client.start(timeout=120)
    t_start = time.monotonic()
    waits: list[float] = []
    made: list[float] = []  # the server's own time from the question to the first answer frame
    try:
        await asyncio.sleep(2.0)
        k = 0
        while time.monotonic() - t_start < seconds - every:
            n = len(client.messages)
            sent = time.monotonic()
            if spoken_audio is not None:
                client.microphone.say(spoken_audio)
                sent += len(spoken_audio) / 48000  # the question is complete once it was said
            else:
                client.ask(QUESTIONS[k % len(QUESTIONS)])
            k += 1
            try:
                speaking = await client.wait_for(lambda m: m["type"] == "state" and m["state"] == "speaking",
                                                 after=n, timeout=every + 30)
                frame = speaking["frame"]
                while not any(p // 3600 >= frame for p, _, _ in client.video[-50:]):
                    await asyncio.sleep(0.005)
                arrived = next(t for p, t, _ in client.video if p // 3600 >= frame)
                waits.append(arrived - sent)
                ended = await client.wait_for(lambda m: m["type"] == "turn_ended", after=n, timeout=60)
                if (ended.get("metrics") or {}).get("first_frame_s") is not None:
                    made.append(ended["metrics"]["first_frame_s"])
            except TimeoutError:
                pass
            await asyncio.sleep(max(0.0, every - (time.monotonic() - sent)))
        elapsed = time.monotonic() - t_start
        import httpx

        async with httpx.AsyncClient(timeout=30) as http:
            listed = (await http.get(url + "/v1/live")).json().get("sessions", [])
        server_late = next((s["late_frames"] for s in listed if s["id"] == client.session_id), 0)
    finally:
        await client.close()
    pts = [p for p, _, _ in client.video]
    arrivals = [t for _, t, _ in client.video]
    late = 0
    if pts:
        # a frame is late when it arrives 100 ms after its time on the stream's clock, the clock
        # being placed by the earliest frame relative to its pts (the network's own delay is not lateness)
        t0 = min(t - p / 90000 for p, t in zip(pts, arrivals))
        late = sum(1 for p, t in zip(pts, arrivals) if t - (t0 + p / 90000) > 0.1)
    span = arrivals[-1] - arrivals[0] if len(arrivals) > 1 else elapsed
    return {"fps": (len(pts) - 1) / span if span > 0 else 0.0, "frames": len(pts), "late": late, "waits": waits,
            "made": made, "server_late": server_late}


def run(n: int, seconds: float, every: float, cores: list[int], spoken: bool, image: bytes) -> dict:
    import httpx

    ctx = multiprocessing.get_context("spawn")
    port, rss = ctx.Value("i", 0), ctx.Value("d", 0.0)
    stop = ctx.Event()
    proc = ctx.Process(target=_serve, args=(port, stop, rss, cores), daemon=True)
    proc.start()
    try:
        deadline = time.monotonic() + 120
        while not port.value:
            if time.monotonic() > deadline or not proc.is_alive():
                raise RuntimeError("the server did not start")
            time.sleep(0.1)
        url = f"http://127.0.0.1:{port.value}"
        r = httpx.post(url + "/v1/avatars", files={"image": ("p.png", image, "image/png")}, data={"name": "Bench"},
                       timeout=300)
        r.raise_for_status()
        avatar_id = r.json()["id"]
        audio = None
        if spoken:
            import numpy as np

            from talkinghead.backends.piper import PiperTTS

            audio = PiperTTS().synthesize(QUESTIONS[0]).resample(48000).samples.astype(np.float32)
        # warm-up: one short session loads the models (TTS, animator, VAD, ASR) and prepares the portrait
        asyncio.run(_session(url, avatar_id, 8.0, 5.0, audio))
        base = rss.value
        rss.value = 0.0

        async def all_sessions():
            return await asyncio.gather(*[_session(url, avatar_id, seconds, every, audio) for _ in range(n)])

        cpu0, wall0 = _cpu_seconds(proc.pid), time.monotonic()
        results = asyncio.run(all_sessions())
        cpu = (_cpu_seconds(proc.pid) - cpu0) / (time.monotonic() - wall0)
        peak = rss.value
    finally:
        stop.set()
        proc.join(30)
        if proc.is_alive():
            proc.terminate()
    waits = [w for r in results for w in r["waits"]]
    made = [w for r in results for w in r["made"]]
    server_late = sum(r["server_late"] for r in results) / n
    return {
        "n": n, "fps": statistics.mean(r["fps"] for r in results), "fps_min": min(r["fps"] for r in results),
        "late": sum(r["late"] for r in results) / n, "frames": sum(r["frames"] for r in results) / n,
        "server_late": server_late, "p50": statistics.median(waits) if waits else float("nan"),
        "p95": _percentile(waits, 0.95) if waits else float("nan"), "answers": len(waits),
        "made": statistics.median(made) if made else float("nan"),
        "base_mb": base, "peak_mb": peak, "cpu": cpu,
    }


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sessions", default="1,2,4", help="concurrent session counts to compare (default 1,2,4)")
    p.add_argument("--seconds", type=float, default=30.0, help="length of each session (default 30)")
    p.add_argument("--every", type=float, default=8.0, help="seconds between questions (default 8)")
    p.add_argument("--cores", type=int, default=2, help="CPU cores for the server and clients (default 2)")
    p.add_argument("--spoken", action="store_true", help="ask by voice (VAD + faster-whisper) instead of typing")
    p.add_argument("--image", default=str(ROOT / "assets" / "portrait_astronaut.png"))
    p.add_argument("--quick", action="store_true", help="1 and 2 sessions of 15 s (a smoke run)")
    args = p.parse_args(argv)
    available = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count()))
    cores = available[: args.cores]
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, set(cores))
    counts = [1, 2] if args.quick else [int(x) for x in args.sessions.split(",") if x.strip()]
    seconds = 15.0 if args.quick else args.seconds
    image = Path(args.image).read_bytes()
    how = "spoken (VAD + faster-whisper)" if args.spoken else "typed"
    print(f"live sessions over WebRTC (piper + viseme 512², 25 fps, 48 kHz Opus) on {len(cores)} cores, "
          f"server and aiortc clients together; {seconds:g} s each, a {how} question every {args.every:g} s")
    print("| sessions | fps per session (mean / min) | frames late at the client | frames made late | "
          "question → first answer frame received p50 s | p95 s | of which made (server) p50 s | answers | "
          "server CPU (cores) | "
          "server RSS after warm-up MB | peak MB |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for n in counts:
        r = run(n, seconds, args.every, cores, args.spoken, image)
        print(f"| {r['n']} | {r['fps']:.1f} / {r['fps_min']:.1f} | {r['late']:.0f} of {r['frames']:.0f} | "
              f"{r['server_late']:.0f} | {r['p50']:.2f} | {r['p95']:.2f} | {r['made']:.2f} | {r['answers']} | "
              f"{r['cpu']:.2f} | {r['base_mb']:.0f} | {r['peak_mb']:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
