"""The WebSocket fallback of live sessions, on the fake backends: the live stream as fragmented MP4
decoded incrementally with PyAV, the same turns and captions as over WebRTC, the microphone as PCM,
and the checks (token, origin, parameters, limits, hostile messages)."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
pytest.importorskip("av")

from av_helpers import IncrementalDecoder, lag_of_best_match  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from server_helpers import fake_settings, png_bytes  # noqa: E402
from starlette.websockets import WebSocketDisconnect  # noqa: E402

from talkinghead.server import create_app  # noqa: E402
from talkinghead.testing import tone_speech  # noqa: E402

SIZE = 192
_y1, _y2, _x1, _x2 = int(SIZE * 0.25), int(SIZE * 0.75), int(SIZE * 0.3), int(SIZE * 0.7)
_cy = int(_y1 + 0.8 * (_y2 - _y1))
MOUTH = (slice(_cy - 9, _cy + 10), slice(_x1 + (_x2 - _x1) // 3, _x2 - (_x2 - _x1) // 3))


def bar(image: np.ndarray) -> float:
    return float(180.0 - image[MOUTH].astype(np.float32).mean())


@pytest.fixture
def make_client(fakes, tmp_path):
    """``make(**settings)`` → (TestClient, avatar id, state)."""
    clients = []

    def make(**overrides):
        overrides.setdefault("live_vad", "energy")
        app = create_app(fake_settings(tmp_path / f"s{len(clients)}", **overrides))
        client = TestClient(app, raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        headers = {"Authorization": f"Bearer {overrides['token']}"} if overrides.get("token") else {}
        img = np.full((SIZE, SIZE, 3), 180, np.uint8)
        r = client.post("/v1/avatars", files={"image": ("p.png", png_bytes(img), "image/png")}, headers=headers)
        assert r.status_code == 201, r.text
        return client, r.json()["id"], app.state.talkinghead

    yield make
    for c in clients:
        c.__exit__(None, None, None)


def pump(ws, decoder, messages, until, limit: float = 60.0):
    """Receive until ``until(messages)`` holds: media to the decoder, JSON to ``messages``."""
    deadline = time.monotonic() + limit
    while not until(messages):
        assert time.monotonic() < deadline, [m["type"] for m in messages][-20:]
        message = ws.receive()
        if message.get("bytes") is not None:
            decoder.feed(message["bytes"])
        elif message.get("text") is not None:
            messages.append(json.loads(message["text"]))
        else:
            raise WebSocketDisconnect(message.get("code", 1000))


def seen(kind, **fields):
    return lambda ms: any(m["type"] == kind and all(m.get(k) == v for k, v in fields.items()) for m in ms)


@pytest.mark.slow
def test_websocket_streams_the_same_turns_as_fmp4_decoded_while_it_plays(make_client):
    client, aid, state = make_client()
    decoder = IncrementalDecoder(measure=bar)
    messages: list[dict] = []
    t0 = time.perf_counter()
    with client.websocket_connect(f"/v1/live/ws?avatar_id={aid}") as ws:
        ready = ws.receive_json()
        pump(ws, decoder, messages, lambda ms: decoder.bytes > 20_000)  # idle frames
        ws.send_json({"type": "ask", "text": "Tell me something. Anything at all will do, really."})
        pump(ws, decoder, messages, seen("turn_ended"))
        n = len(messages)
        pump(ws, decoder, messages, lambda ms: any(m["type"] == "state" and m["state"] == "idle" for m in ms[n:]))
        t_end = time.perf_counter()
        first_decoded = decoder.first_video_at
        assert len(state.live.registry) == 1
    decoder.close()
    assert decoder.error is None, decoder.error
    assert ready["type"] == "ready" and ready["transport"] == "websocket" and ready["mime"].startswith("video/mp4")
    # decoded while the session ran, not after
    assert first_decoded is not None and first_decoded < t_end - 2.0, (first_decoded - t0, t_end - t0)
    assert decoder.size == (SIZE, SIZE) and decoder.sample_rate == 48000
    pts = np.array([p for p, _, _ in decoder.video])
    assert np.allclose(np.diff(pts), 0.04, atol=1e-3), np.unique(np.round(np.diff(pts), 4))
    voice = decoder.samples(48000)
    assert abs(len(voice) / 48000 - (pts[-1] + 0.04)) < 0.15
    lag, scores = lag_of_best_match(decoder.video, voice, 48000, 25)
    assert abs(lag) <= 1 and scores[lag] > 0.6, scores
    kinds = [m["type"] for m in messages]
    assert kinds[0] == "state" and "caption" in kinds and "turn_ended" in kinds
    ended = next(m for m in messages if m["type"] == "turn_ended")
    assert ended["status"] == "done" and ended["answer"].startswith("You said: Tell me something.")
    captions = [(m["role"], m["text"]) for m in messages if m["type"] == "caption"]
    assert captions[0] == ("user", "Tell me something. Anything at all will do, really.")
    # the client left: the session is closed
    deadline = time.monotonic() + 10
    while len(state.live.registry):
        assert time.monotonic() < deadline
        time.sleep(0.05)


@pytest.mark.slow
def test_websocket_microphone_makes_turns_and_interrupts(make_client):
    client, aid, state = make_client()
    llm = state.engine.backend("llm", "fake")
    llm.enqueue("Yes. " + "This answer goes on and on for a long while. " * 6)
    question = tone_speech(["a", "b", "c"], sample_rate=16000).samples
    pcm = (np.concatenate([np.zeros(8000, np.float32), question, np.zeros(16000, np.float32)]) * 32767).astype("<i2")
    decoder = IncrementalDecoder()
    messages: list[dict] = []
    with client.websocket_connect(f"/v1/live/ws?avatar_id={aid}&audio_rate=16000") as ws:
        assert ws.receive_json()["audio_rate"] == 16000
        for i in range(0, len(pcm), 1600):  # 100 ms pieces
            ws.send_bytes(pcm[i:i + 1600].tobytes())
        pump(ws, decoder, messages, seen("state", state="speaking"))
        time.sleep(0.5)
        n = len(messages)
        for i in range(0, len(pcm), 1600):  # the user speaks over the answer
            ws.send_bytes(pcm[i:i + 1600].tobytes())
        pump(ws, decoder, messages, lambda ms: sum(m["type"] == "turn_ended" for m in ms) >= 2)
    decoder.close()
    user = [m for m in messages if m["type"] == "caption" and m["role"] == "user"]
    assert user[0]["text"] == "hello there"
    ended = [m for m in messages if m["type"] == "turn_ended"]
    assert ended[0]["status"] == "interrupted" and ended[1]["status"] == "done"
    assert [m["type"] for m in messages[n:]].count("user_speech_started") == 1


@pytest.mark.slow
def test_websocket_checks_token_origin_parameters_and_limits(make_client):
    client, aid, state = make_client(token="sesame", max_live_sessions=1)
    auth = {"Authorization": "Bearer sesame"}

    def refused(url, headers=None):
        with client.websocket_connect(url, headers=headers or {}) as ws:
            error = ws.receive_json()
            with pytest.raises(WebSocketDisconnect) as closed:
                ws.receive_json()
        assert "Traceback" not in error["error"]["message"]
        return error["error"]["type"], closed.value.code

    assert refused(f"/v1/live/ws?avatar_id={aid}") == ("Unauthorized", 4401)
    assert refused(f"/v1/live/ws?avatar_id={aid}", {**auth, "Origin": "https://evil.example"}) == ("Forbidden", 4403)
    assert refused("/v1/live/ws", auth) == ("BadRequest", 4400)
    assert refused(f"/v1/live/ws?avatar_id={aid}&audio_rate=999999", auth) == ("BadRequest", 4400)
    assert refused("/v1/live/ws?avatar_id=av_" + "0" * 20, auth) == ("NotFound", 4404)
    assert refused("/v1/live/ws?avatar_id=../../etc", auth) == ("NotFound", 4404)
    # the page's own origin and the cookie the page logs in with are accepted
    client.post("/v1/auth", json={"token": "sesame"})
    host = "testserver"
    with client.websocket_connect(f"/v1/live/ws?avatar_id={aid}", headers={"Origin": f"http://{host}"}) as ws:
        assert ws.receive_json()["type"] == "ready"
        # one session at a time on this server
        assert refused(f"/v1/live/ws?avatar_id={aid}", auth) == ("TooManySessions", 4503)
        ws.send_bytes(b"\x00" * 64_002)
        ws.send_bytes(b"\x00" * 3)
        ws.send_text("{not json")
        ws.send_text(json.dumps({"type": "ask", "text": "x" * 20_000}))
        ws.send_json({"type": "ask", "text": "question.wav"})
        decoder = IncrementalDecoder()
        messages: list[dict] = []
        pump(ws, decoder, messages, seen("turn_ended"))
        decoder.close()
    errors = sorted(m["error"]["type"] for m in messages if m["type"] == "error")
    assert errors == ["BadRequest", "PayloadTooLarge", "PayloadTooLarge", "PayloadTooLarge"], errors
    ended = next(m for m in messages if m["type"] == "turn_ended")
    assert ended["status"] == "done" and ended["answer"] == "You said: question.wav"  # text, never a file
    assert state.engine.backend("asr", "fake").calls == []


@pytest.mark.slow
def test_websocket_session_closes_when_idle(make_client):
    client, aid, state = make_client(live_idle=1.0)
    messages: list[dict] = []
    decoder = IncrementalDecoder()
    with client.websocket_connect(f"/v1/live/ws?avatar_id={aid}") as ws:
        ws.receive_json()
        with pytest.raises(WebSocketDisconnect):
            pump(ws, decoder, messages, lambda ms: False, limit=20)
    decoder.close()
    assert [m for m in messages if m["type"] == "closed"][0]["reason"] == "idle"
    assert len(state.live.registry) == 0
