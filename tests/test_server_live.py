"""Live sessions over WebRTC, on the fake backends, with an aiortc client on 127.0.0.1: one audio and
one video track on one clock, turns from the data channel and the microphone, barge-in, captions,
memory, and the limits (token, session count, idle and connect timeouts, hostile messages)."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("av")
pytest.importorskip("aiortc")
httpx = pytest.importorskip("httpx")

from av_helpers import lag_of_best_match  # noqa: E402
from server_helpers import fake_settings, png_bytes  # noqa: E402

from talkinghead.server import create_app  # noqa: E402
from talkinghead.testing import tone_speech  # noqa: E402
from talkinghead.testing.app_server import AppServer  # noqa: E402
from talkinghead.testing.live_client import RtcLiveClient  # noqa: E402

SIZE = 192
# the fake animator draws a dark bar over the mouth whose height follows the audio level
BOX = (int(SIZE * 0.25), int(SIZE * 0.75), int(SIZE * 0.3), int(SIZE * 0.7))  # y1, y2, x1, x2 of its face
_cy = int(BOX[0] + 0.8 * (BOX[1] - BOX[0]))
_w = BOX[3] - BOX[2]
MOUTH = (slice(_cy - 9, _cy + 10), slice(BOX[2] + _w // 3, BOX[3] - _w // 3))
LONG_ANSWER = ("Yes. The planets go around the sun in long slow circles that take many years. "
               "Some of them are made of rock and others are made of gas and ice. "
               "The biggest one is called Jupiter and it has many moons. "
               "Saturn has beautiful rings made of ice and dust that shine in the light.")


def bar(image: np.ndarray) -> float:
    """How dark the fake animator's mouth bar is (0: no bar)."""
    return float(180.0 - image[MOUTH].astype(np.float32).mean())


def portrait_png() -> bytes:
    rng = np.random.default_rng(1)
    img = np.full((SIZE, SIZE, 3), 180, np.uint8)
    img[:, :, 0] += rng.integers(0, 6, (SIZE, SIZE), dtype=np.uint8)
    return png_bytes(img)


@pytest.fixture
def live_app(fakes, tmp_path):
    """``make(**settings)`` → (base url, avatar id, server state) of a real server on 127.0.0.1."""
    servers = []

    def make(**overrides):
        overrides.setdefault("ice_addresses", ("127.0.0.1",))
        overrides.setdefault("live_vad", "energy")
        app = create_app(fake_settings(tmp_path / f"s{len(servers)}", **overrides))
        server = AppServer(app).start()
        servers.append(server)
        headers = {"Authorization": f"Bearer {overrides['token']}"} if overrides.get("token") else {}
        r = httpx.post(server.url + "/v1/avatars", files={"image": ("p.png", portrait_png(), "image/png")},
                       data={"name": "Ada"}, headers=headers, timeout=60)
        assert r.status_code == 201, r.text
        return server.url, r.json()["id"], app.state.talkinghead

    yield make
    for server in servers:
        server.stop()


def run(coro, timeout: float = 120):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def types(client, after: int = 0) -> list[str]:
    return [m["type"] for m in client.messages[after:]]


def wait_closed(state, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while len(state.live.registry):
        assert time.monotonic() < deadline, f"live sessions still open: {state.live.registry.keys()}"
        time.sleep(0.05)


@pytest.mark.slow
def test_webrtc_streams_voice_and_face_on_one_clock_at_25_fps(live_app):
    url, aid, state = live_app()

    async def main():
        client = RtcLiveClient(url, aid, measure=bar)
        await client.start()
        try:
            ready = await client.wait_for(lambda m: m["type"] == "ready")
            await client.wait_frames(25)  # a second of idle frames first
            client.ask("Tell me something. Anything at all will do, really.")
            ended = await client.wait_for(lambda m: m["type"] == "turn_ended", timeout=60)
            n = len(client.messages)
            await client.wait_for(lambda m: m["type"] == "state" and m["state"] == "idle", after=n - 1)
            await asyncio.sleep(0.6)
        finally:
            await client.close()
        return client, ready, ended

    client, ready, ended = run(main())
    # ICE stayed on loopback: every candidate of the answer is 127.0.0.1
    candidates = [line for line in client.answer["sdp"].splitlines() if line.startswith("a=candidate")]
    assert candidates and all(" 127.0.0.1 " in line for line in candidates), candidates
    assert ready["fps"] == 25 and ready["sample_rate"] == 48000 and ready["session_id"] == client.session_id

    # video: one frame every 3600 ticks of the 90 kHz clock (25 fps), paced in real time
    pts = np.array([p for p, _, _ in client.video])
    arrival = np.array([t for _, t, _ in client.video])
    steps = np.diff(pts)
    assert len(pts) > 100 and (steps > 0).all() and np.mean(steps == 3600) > 0.98, np.unique(steps)
    rate = (len(pts) - 1) / (arrival[-1] - arrival[0])
    assert 20 < rate < 30, rate
    # audio: 20 ms Opus frames back to back, as long as the video
    apts = np.array([p for p, _, _ in client.audio])
    assert (np.diff(apts) == 960).all()
    video_end = (pts[-1] + 3600) / 90000
    audio_end = (apts[-1] + 960) / 48000
    assert abs(video_end - audio_end) < 0.2, (video_end, audio_end)

    # one clock: the mouth bar follows the voice with no lag (frame k shows samples k*1920...)
    frames = [(p / 90000, t, v) for p, t, v in client.video]
    assert max(v for _, _, v in frames) > min(v for _, _, v in frames) + 20, "the mouth never moved"
    lag, scores = lag_of_best_match(frames, client.audio_samples(), 48000, 25)
    assert abs(lag) <= 1 and scores[lag] > 0.6, scores

    # the data channel: idle, then the answer with captions of both sides, then idle again
    kinds = types(client)
    assert kinds[0] == "ready"
    states = [m["state"] for m in client.messages if m["type"] == "state"]
    assert states[0] == "idle" and "speaking" in states and states[-1] == "idle"
    captions = [(m["role"], m["text"]) for m in client.messages if m["type"] == "caption"]
    assert captions[0] == ("user", "Tell me something. Anything at all will do, really.")
    assert [c for c in captions if c[0] == "assistant"]
    assert ended["status"] == "done" and ended["answer"].startswith("You said: Tell me something.")
    assert ended["metrics"]["av_drift_samples"] == 0
    # the peer went away: the session is closed and its slot free
    wait_closed(state)


@pytest.mark.slow
def test_webrtc_microphone_turn_and_barge_in_back_to_idle(live_app):
    url, aid, state = live_app()
    llm = state.engine.backend("llm", "fake")
    llm.enqueue(LONG_ANSWER)
    question = tone_speech(["a", "b", "c"]).resample(48000).samples

    async def main():
        client = RtcLiveClient(url, aid, microphone=True, measure=bar)
        await client.start()
        try:
            await client.wait_frames(10)
            client.microphone.say(question)
            await client.wait_for(lambda m: m["type"] == "user_speech_started")
            heard = await client.wait_for(lambda m: m["type"] == "caption" and m["role"] == "user", timeout=30)
            first = await client.wait_for(lambda m: m["type"] == "turn_started" and m["source"] == "audio")
            await client.wait_for(lambda m: m["type"] == "state" and m["state"] == "speaking", timeout=30)
            await asyncio.sleep(2.5)  # the answer is playing
            n = len(client.messages)
            client.microphone.say(question)  # the user speaks over it
            cut = await client.wait_for(lambda m: m["type"] == "turn_ended", after=n, timeout=30)
            back = await client.wait_for(lambda m: m["type"] == "state" and m["state"] != "speaking", after=n)
            second = await client.wait_for(lambda m: m["type"] == "turn_ended" and m["turn"] != first["turn"],
                                           after=n, timeout=60)
            await asyncio.sleep(0.3)
        finally:
            await client.close()
        return client, heard, first, cut, back, second

    client, heard, first, cut, back, second = run(main())
    assert heard["text"] == "hello there" and heard["turn"] == first["turn"]  # the fake ASR's words
    assert cut["turn"] == first["turn"] and cut["status"] == "interrupted"
    # only what was heard counts: whole sentences, a beginning of the long answer
    assert cut["answer"] and LONG_ANSWER.startswith(cut["answer"]) and cut["answer"] != LONG_ANSWER
    # back to idle motion (listening: the user is still speaking) within 100 ms of stream time
    assert back["state"] == "listening" and 0 <= (back["frame"] - cut["frame"]) * 40 <= 100, (cut, back)
    # the face: the mouth bar is gone two frames after the cut, until the next answer
    frames = {p // 3600: v for p, _, v in client.video}
    speech = [v for k, v in frames.items() if first["frame"] <= k < cut["frame"]]
    after = [frames[k] for k in range(back["frame"] + 2, back["frame"] + 12) if k in frames]
    assert len(after) >= 8 and max(after) < 0.3 * max(speech), (max(after), max(speech))
    # the second utterance was answered in full
    assert second["status"] == "done" and second["answer"] == "You said: hello there"
    assert [m["source"] for m in client.messages if m["type"] == "turn_started"] == ["audio", "audio"]


@pytest.mark.slow
def test_data_channel_text_is_only_text_and_bad_messages_get_json_errors(live_app):
    url, aid, state = live_app()
    asr = state.engine.backend("asr", "fake")

    async def main():
        async with RtcLiveClient(url, aid) as client:
            await client.wait_for(lambda m: m["type"] == "ready")
            client.channel.send("this is not json")
            client.send({"type": "shout"})
            client.send({"type": "ask", "text": "x" * 2001})
            client.send({"type": "ask"})
            client.channel.send(b"\x00\x01")
            await client.wait_for(lambda m: len([x for x in client.messages if x["type"] == "error"]) >= 5)
            client.ask("/etc/passwd")  # a path is only text, never read
            ended = await client.wait_for(lambda m: m["type"] == "turn_ended", timeout=60)
        return client, ended

    client, ended = run(main())
    errors = [m["error"]["type"] for m in client.messages if m["type"] == "error"]
    assert sorted(errors) == ["BadRequest"] * 4 + ["TextError"], errors
    assert all("Traceback" not in m["error"]["message"] for m in client.messages if m["type"] == "error")
    assert ended["status"] == "done" and ended["answer"] == "You said: /etc/passwd"
    assert asr.calls == []


@pytest.mark.slow
def test_offer_checks_token_input_and_limits(live_app):
    url, aid, state = live_app(token="sesame", max_live_sessions=1)
    auth = {"Authorization": "Bearer sesame"}
    client = httpx.Client(base_url=url, timeout=60)

    def offer(sdp="v=0\r\n", avatar=aid, headers=auth):
        return client.post("/v1/live/offer", json={"sdp": sdp, "avatar_id": avatar}, headers=headers)

    r = offer(headers={})
    assert r.status_code == 401 and r.json()["error"]["type"] == "Unauthorized"
    r = offer("not sdp at all")
    assert r.status_code == 400 and r.json()["error"]["type"] == "BadRequest"
    r = offer("v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n")
    assert r.status_code == 400 and "SDP" in r.json()["error"]["message"]
    r = offer(avatar="av_" + "0" * 20)
    assert r.status_code == 404 and r.json()["error"]["type"] == "NotFound"
    r = offer(avatar="../../etc/passwd")
    assert r.status_code == 404
    r = client.post("/v1/live/offer", json={"sdp": "x" * 100_001, "avatar_id": aid}, headers=auth)
    assert r.status_code == 422 and r.json()["error"]["type"] == "ValidationError"
    assert state.live.registry.keys() == []  # nothing was left behind

    async def main():
        first = await RtcLiveClient(url, aid, token="sesame").start()
        await first.wait_for(lambda m: m["type"] == "ready")
        second = RtcLiveClient(url, aid, token="sesame")
        with pytest.raises(httpx.HTTPStatusError) as refused:
            await second.start()
        info = (await asyncio.to_thread(client.get, "/v1/live", headers=auth)).json()
        # the client ends the session with DELETE; the slot is free again
        r = await asyncio.to_thread(client.delete, f"/v1/live/{first.session_id}", headers=auth)
        closed = await first.wait_for(lambda m: m["type"] == "closed")
        await first.close()
        return refused.value.response, info, r, closed

    refused, info, deleted, closed = run(main())
    assert refused.status_code == 503 and refused.json()["error"]["type"] == "TooManySessions"
    assert refused.headers["retry-after"]
    assert info["active"] == 1 and info["max_sessions"] == 1 and info["webrtc"] is True
    assert deleted.status_code == 204 and closed["reason"] == "ended_by_client"
    wait_closed(state)
    assert client.delete("/v1/live/live_" + "0" * 20, headers=auth).status_code == 404
    client.close()


@pytest.mark.slow
def test_idle_and_connect_timeouts_close_sessions(live_app):
    url, aid, state = live_app(live_idle=1.0, live_connect_timeout=1.0)

    async def main():
        async with RtcLiveClient(url, aid) as client:
            closed = await client.wait_for(lambda m: m["type"] == "closed", timeout=20)
        # an offer whose answer is never used: the peer never connects
        from aiortc import RTCPeerConnection

        from talkinghead.server.rtc import ice_configuration, restrict_host_candidates

        pc = RTCPeerConnection(ice_configuration())
        pc.addTransceiver("audio")
        pc.addTransceiver("video", direction="recvonly")
        restrict_host_candidates(pc, ["127.0.0.1"])
        await pc.setLocalDescription(await pc.createOffer())
        async with httpx.AsyncClient(base_url=url) as http:
            r = await http.post("/v1/live/offer", json={"sdp": pc.localDescription.sdp, "avatar_id": aid})
        assert r.status_code == 200
        t0 = time.monotonic()
        while len(state.live.registry) and time.monotonic() - t0 < 15:
            await asyncio.sleep(0.05)
        await pc.close()
        return closed, time.monotonic() - t0

    closed, waited = run(main())
    assert closed["reason"] == "idle"
    assert len(state.live.registry) == 0 and waited < 15


@pytest.mark.slow
def test_live_turns_continue_and_extend_a_conversation(live_app):
    url, aid, state = live_app()
    llm = state.engine.backend("llm", "fake")
    http = httpx.Client(base_url=url, timeout=60)
    conv = http.post("/v1/conversations", json={"avatar_id": aid}).json()
    r = http.post(f"/v1/conversations/{conv['id']}/turns", data={"text": "My name is Ada."})
    assert r.status_code == 200, r.text

    async def main():
        async with RtcLiveClient(url, aid, conversation_id=conv["id"]) as client:
            client.ask("What is my name?")
            return await client.wait_for(lambda m: m["type"] == "turn_ended", timeout=60)

    ended = run(main())
    assert ended["status"] == "done"
    sent = [m.content for m in llm.requests[-1]]
    assert sent[-3:] == ["My name is Ada.", "You said: My name is Ada.", "What is my name?"]
    deadline = time.monotonic() + 10
    while len(http.get(f"/v1/conversations/{conv['id']}").json()["turns"]) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    turns = http.get(f"/v1/conversations/{conv['id']}").json()["turns"]
    assert turns[-1]["live"] is True and turns[-1]["question"] == "What is my name?"
    assert turns[-1]["answer"] == "You said: What is my name?" and turns[-1]["status"] == "done"
    other = http.post("/v1/avatars", files={"image": ("p.png", portrait_png(), "image/png")}).json()["id"]
    r = http.post("/v1/live/offer", json={"sdp": "v=0 m=audio m=video", "avatar_id": other,
                                          "conversation_id": conv["id"]})
    assert r.status_code == 400 and "another avatar" in r.json()["error"]["message"]
    http.close()


@pytest.mark.slow
def test_no_llm_means_no_live_sessions(live_app):
    url, aid, state = live_app(stages={"tts": "fake", "animator": "fake", "asr": "fake", "llm": None,
                                       "writer": "mp4"})
    r = httpx.post(url + "/v1/live/offer", json={"sdp": "v=0", "avatar_id": aid})
    assert r.status_code == 503 and r.json()["error"]["type"] == "NoLLM"
    assert httpx.get(url + "/v1/live").json()["conversation"] is False


# -- what waits for aiortc's senders --------------------------------------------------------------
def _chunk(first: int, n: int, kind: str = "speech", turn: int | None = 1, level: float = 0.5, fps: int = 25):
    from fractions import Fraction

    from talkinghead.values import AVChunk

    frames = np.zeros((n, 8, 8, 3), np.uint8)
    frames[:, 0, 0, 0] = np.arange(first, first + n) % 256  # each frame says which it is
    samples = np.full(n * 48000 // fps, level if kind == "speech" else 0.0, np.float32)
    return AVChunk(frames, samples, 48000, Fraction(fps), first, kind=kind, turn=turn if kind == "speech" else None)


async def _drain(track, n: int) -> list:
    return [await asyncio.wait_for(track.recv(), 5) for _ in range(n)]


def test_video_waiting_for_a_slow_encoder_is_bounded_to_the_newest_frames():
    from talkinghead.server.rtc import MAX_VIDEO_LAG_S, ChunkTracks

    async def main():
        tracks = ChunkTracks(asyncio.get_running_loop())
        for first in range(0, 30, 3):  # 30 frames arrive while nothing is encoded
            tracks.feed(_chunk(first, 3))
        await asyncio.sleep(0.05)
        return tracks, await _drain(tracks.video, round(MAX_VIDEO_LAG_S * 25)), await _drain(tracks.audio, 60)

    tracks, video, audio = run(main())
    keep = round(MAX_VIDEO_LAG_S * 25)
    assert keep == 5 and tracks.dropped_frames == 30 - keep
    # the newest frames, on their own clock (pts = frame index on 90 kHz)
    assert [f.pts // 3600 for f in video] == list(range(30 - keep, 30))
    assert [int(f.to_ndarray(format="rgb24")[0, 0, 0]) for f in video] == list(range(30 - keep, 30))
    # audio is never dropped: 60 frames of 20 ms, back to back
    assert [f.pts for f in audio] == [960 * k for k in range(60)]


def test_an_interrupted_answer_still_waiting_is_not_sent_and_its_voice_is_silenced():
    from talkinghead.server.rtc import ChunkTracks

    async def main():
        tracks = ChunkTracks(asyncio.get_running_loop())
        tracks.feed(_chunk(0, 2, turn=7))  # the answer of turn 7, already sent...
        await asyncio.sleep(0.02)
        sent = await _drain(tracks.video, 2), await _drain(tracks.audio, 4)
        tracks.feed(_chunk(2, 3, turn=7))  # ...and still waiting when the user speaks over it
        tracks.feed(_chunk(5, 1, "listening"))
        tracks.cut(7)
        tracks.feed(_chunk(6, 1, turn=7))  # made just before the cut reached the stream
        tracks.feed(_chunk(7, 2, "listening"))
        tracks.feed(_chunk(9, 1, turn=8))  # the next answer plays
        await asyncio.sleep(0.05)
        return tracks, sent, await _drain(tracks.video, 4), await _drain(tracks.audio, 16)

    tracks, (sent_video, sent_audio), video, audio = run(main())
    assert [f.pts // 3600 for f in sent_video] == [0, 1]
    assert all(np.abs(f.to_ndarray()).max() > 10000 for f in sent_audio)  # heard before the cut
    # the cut answer's frames are gone: the listening frames and the next answer follow
    assert [f.pts // 3600 for f in video] == [5, 7, 8, 9]
    assert tracks.cut_frames == 4
    # the audio clock has no gap: every 20 ms frame is there, the cut answer's as silence
    assert [f.pts for f in audio] == [960 * k for k in range(4, 20)]
    levels = [int(np.abs(f.to_ndarray()).max()) for f in audio]
    assert levels[:14] == [0] * 14 and min(levels[14:]) > 10000, levels
    assert tracks.silenced_audio_frames == 8


def test_a_cut_silences_the_audio_frame_that_straddles_the_answers_end():
    from talkinghead.server.rtc import ChunkTracks

    async def main():
        tracks = ChunkTracks(asyncio.get_running_loop())
        # at 30 fps a frame covers 1600 samples: 20 ms audio frames (960) straddle the chunks
        tracks.feed(_chunk(0, 1, turn=3, fps=30))  # one audio frame, 640 samples of speech carried over
        tracks.feed(_chunk(1, 1, "listening", fps=30))  # the carried speech + 320 of silence, then one more
        tracks.cut(3)
        await asyncio.sleep(0.05)
        return tracks, await _drain(tracks.audio, 3)

    tracks, audio = run(main())
    assert [f.pts for f in audio] == [0, 960, 1920]
    # both frames with the answer's samples are silenced; the pure listening frame was silent already
    assert tracks.silenced_audio_frames == 2
    assert all(np.abs(f.to_ndarray()).max() == 0 for f in audio)


def test_the_link_tells_its_transport_which_answers_were_cut(tmp_path):
    from types import SimpleNamespace

    from talkinghead.server.live import LiveLink
    from talkinghead.server.settings import ServerSettings
    from talkinghead.streaming.events import TurnEnded

    service = SimpleNamespace(settings=ServerSettings(data_dir=tmp_path), registry=SimpleNamespace(get=lambda _: None))
    link = LiveLink(service, "live_x", "webrtc", "127.0.0.1")
    sent, cut = [], []
    link.attach(sent.append, lambda chunk: None, on_cut=cut.append)
    for turn, status in [(1, "done"), (2, "interrupted"), (3, "nothing_understood"), (4, "deadline"), (5, "error")]:
        link.on_event(TurnEnded(turn, status, 10 * turn, answer="Hi."))
    assert cut == [2, 4, 5]  # the turns whose unplayed speech the session dropped
    assert [m["status"] for m in sent] == ["done", "interrupted", "nothing_understood", "deadline", "error"]
    link._worker.shutdown()
