"""The HTTP API on the fake backends (fast): jobs, progress, Range, cancel, expiry, avatars,
conversations, token, CORS, rate limits, errors — with FastAPI's TestClient (httpx)."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
pytest.importorskip("av")

from fastapi.testclient import TestClient  # noqa: E402
from server_helpers import (  # noqa: E402
    GATE,
    GatedPlugin,
    fake_settings,
    png_bytes,
    speech,
    wait_job,
    wav_bytes,
    webm_opus_bytes,
)

from talkinghead.plugins import add_plugin  # noqa: E402
from talkinghead.server import create_app  # noqa: E402


@pytest.fixture
def portrait_png(small_portrait) -> bytes:
    return png_bytes(small_portrait)


@pytest.fixture
def make_client(fakes, tmp_path):
    """``make_client(**settings)``: a TestClient on the fake backends; closed after the test."""
    add_plugin(GatedPlugin(), name="gated-animator")
    GATE.reset()
    clients = []

    def make(**overrides):
        app = create_app(fake_settings(tmp_path, **overrides))
        client = TestClient(app, raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    GATE.event.set()
    for c in clients:
        c.__exit__(None, None, None)


def post_video(client, portrait_png, **data):
    files = {"image": ("p.png", portrait_png, "image/png")}
    if "audio" in data:
        files["audio"] = ("a.wav", data.pop("audio"), "audio/wav")
    return client.post("/v1/videos", files=files, data=data)


@pytest.mark.slow
def test_render_job_text_to_video_with_progress_range_and_captions(make_client, portrait_png):
    client = make_client()
    r = post_video(client, portrait_png, text="Hello there. This is a test of the server.", fps="10")
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["status"] == "queued" and job["id"].startswith("vid_")
    done = wait_job(client, job["id"])
    assert done["status"] == "completed", done
    assert done["progress"] == 1.0 and done["expires_at"] > done["finished_at"]
    result = done["result"]
    assert result["fps"] == 10 and result["has_audio"] and result["frames"] == round(result["duration"] * 10)
    assert done["params"]["text"] == "Hello there. This is a test of the server."

    full = client.get(done["content_url"])
    assert full.status_code == 200 and full.headers["content-type"] == "video/mp4"
    assert full.headers.get("accept-ranges") == "bytes"
    assert full.content[4:8] == b"ftyp" and len(full.content) == result["bytes"]
    part = client.get(done["content_url"], headers={"Range": "bytes=0-99"})
    assert part.status_code == 206
    assert part.headers["content-range"] == f"bytes 0-99/{len(full.content)}"
    assert part.content == full.content[:100]
    tail = client.get(done["content_url"], headers={"Range": "bytes=100-"})
    assert tail.status_code == 206 and tail.content == full.content[100:]
    bad = client.get(done["content_url"], headers={"Range": f"bytes={len(full.content) + 10}-"})
    assert bad.status_code == 416
    download = client.get(done["content_url"] + "?download=true")
    assert "attachment" in download.headers["content-disposition"]

    vtt = client.get(done["captions_url"])
    assert vtt.status_code == 200 and vtt.text.startswith("WEBVTT")
    assert "Hello there." in vtt.text and "This is a test of the server." in vtt.text

    listed = client.get("/v1/videos").json()["data"]
    assert [j["id"] for j in listed] == [job["id"]]


def test_render_job_from_audio_upload(make_client, portrait_png):
    client = make_client()
    r = post_video(client, portrait_png, audio=wav_bytes(speech(5)))
    assert r.status_code == 202, r.text
    done = wait_job(client, r.json()["id"])
    assert done["status"] == "completed", done
    assert abs(done["result"]["duration"] - speech(5).duration) < 0.1
    assert done["captions_url"] is None and done["params"]["input"] == "audio"


@pytest.mark.slow
def test_progress_is_reported_while_running(make_client, portrait_png):
    client = make_client()
    r = post_video(client, portrait_png, text=" ".join(["word"] * 30), animator="gated", fps="20")
    jid = r.json()["id"]
    assert GATE.started.acquire(timeout=30)
    # frames are held back: the job is running at the animate stage, partly done
    deadline = time.monotonic() + 10
    while (job := client.get(f"/v1/videos/{jid}").json())["stage"] != "animate" and time.monotonic() < deadline:
        GATE.event.set()
        time.sleep(0.01)
        GATE.event.clear()
    assert job["status"] == "in_progress" and job["stage"] == "animate"
    assert 0.1 < job["progress"] < 1.0
    GATE.event.set()
    assert wait_job(client, jid)["status"] == "completed"


def test_cancel_running_job_leaves_no_video_and_delete_removes_it(make_client, portrait_png, tmp_path):
    client = make_client()
    jid = post_video(client, portrait_png, text="one two three four five six", animator="gated").json()["id"]
    assert GATE.started.acquire(timeout=30)
    r = client.delete(f"/v1/videos/{jid}")
    assert r.status_code == 200 and r.json()["id"] == jid
    GATE.event.set()
    job = wait_job(client, jid)
    assert job["status"] == "cancelled" and job["result"] is None
    assert client.get(f"/v1/videos/{jid}/content").status_code == 409
    folder = tmp_path / "data" / "job" / jid
    assert not list(folder.glob("*.mp4")), list(folder.iterdir())  # the partial file was removed
    assert client.delete(f"/v1/videos/{jid}").status_code == 204
    assert client.get(f"/v1/videos/{jid}").status_code == 404
    assert not folder.exists()


def test_queue_bounds_concurrency_and_refuses_when_full(make_client, portrait_png):
    client = make_client(job_workers=2, max_queued=4)
    ids = [post_video(client, portrait_png, text="one two three", animator="gated").json()["id"] for _ in range(4)]
    full = post_video(client, portrait_png, text="one two three", animator="gated")
    assert full.status_code == 503 and full.json()["error"]["type"] == "QueueFull"
    assert int(full.headers["retry-after"]) > 0
    assert GATE.started.acquire(timeout=30) and GATE.started.acquire(timeout=30)
    statuses = [client.get(f"/v1/videos/{i}").json()["status"] for i in ids]
    assert statuses.count("in_progress") == 2 and statuses.count("queued") == 2
    # a queued job is cancelled at once and never starts
    r = client.delete(f"/v1/videos/{ids[3]}")
    assert r.json()["status"] == "cancelled"
    GATE.event.set()
    finals = [wait_job(client, i)["status"] for i in ids]
    assert finals == ["completed", "completed", "completed", "cancelled"]
    assert GATE.peak == 2


@pytest.mark.slow
def test_several_jobs_at_once_all_complete(make_client, portrait_png):
    client = make_client(job_workers=2)
    from concurrent.futures import ThreadPoolExecutor

    texts = [f"video number {i} says hello" for i in range(6)]
    with ThreadPoolExecutor(6) as pool:
        responses = list(pool.map(lambda t: post_video(client, portrait_png, text=t), texts))
    assert [r.status_code for r in responses] == [202] * 6
    jobs = [wait_job(client, r.json()["id"]) for r in responses]
    assert all(j["status"] == "completed" for j in jobs), jobs
    assert len({j["id"] for j in jobs}) == 6
    bodies = [client.get(j["content_url"]).content for j in jobs]
    assert all(b[4:8] == b"ftyp" for b in bodies)


@pytest.mark.slow
def test_finished_jobs_expire(make_client, portrait_png, tmp_path):
    client = make_client(job_ttl=0.5, sweep_interval=3600)
    jid = post_video(client, portrait_png, text="short lived").json()["id"]
    assert wait_job(client, jid)["status"] == "completed"
    assert (tmp_path / "data" / "job" / jid / "video.mp4").exists()
    time.sleep(0.7)
    state = client.app.state.talkinghead
    assert state.sweep()["jobs"] == 1
    assert client.get(f"/v1/videos/{jid}").status_code == 404
    assert client.get(f"/v1/videos/{jid}/content").status_code == 404
    assert not (tmp_path / "data" / "job" / jid).exists()


def test_expiry_sweep_runs_from_requests(make_client, portrait_png):
    client = make_client(job_ttl=0.3, sweep_interval=0.2)
    jid = post_video(client, portrait_png, text="short lived").json()["id"]
    assert wait_job(client, jid)["status"] == "completed"
    deadline = time.monotonic() + 10
    while client.get(f"/v1/videos/{jid}").status_code != 404:
        assert time.monotonic() < deadline, "the job never expired"
        time.sleep(0.1)


def test_job_survives_client_going_away(make_client, portrait_png, tmp_path):
    """The job belongs to the server: a new client (another connection) finds it finished."""
    client = make_client()
    jid = post_video(client, portrait_png, text="nobody waits for me").json()["id"]
    other = TestClient(client.app)
    assert wait_job(other, jid)["status"] == "completed"


def test_failed_job_reports_a_typed_error_without_traceback(make_client, portrait_png):
    client = make_client()
    fake_tts = client.app.state.talkinghead.engine.backend("tts", "fake")

    def boom(text, *, voice=None):
        raise RuntimeError("secret internal detail")

    fake_tts.synthesize = boom
    job = wait_job(client, post_video(client, portrait_png, text="this will fail").json()["id"])
    assert job["status"] == "failed"
    assert job["error"]["type"] == "InternalError" and "secret" not in job["error"]["message"]
    assert "Traceback" not in json.dumps(job)


def test_route_crash_answers_json_500(make_client, monkeypatch):
    client = make_client()
    engine = client.app.state.talkinghead.engine
    monkeypatch.setattr(engine, "describe", lambda: 1 / 0)
    r = client.get("/v1/backends")
    assert r.status_code == 500
    assert r.json() == {"error": {"type": "InternalError", "message": r.json()["error"]["message"]}}
    assert "ZeroDivision" not in r.text and "Traceback" not in r.text


@pytest.mark.parametrize(
    "data, status, type_",
    [
        ({"text": "hi there", "animator": "nope"}, 422, "BackendNotFoundError"),
        ({"text": "hi there", "tts": "missing"}, 422, "BackendNotFoundError"),
        ({"text": "hi there", "voice": "not-a-voice"}, 422, "ConfigError"),
        ({"text": "hi there", "fps": "500"}, 422, "ConfigError"),
        ({"text": "hi there", "emotion": "happy"}, 422, "ConfigError"),  # the fake animator has no emotion
        ({"text": "hi there", "animator_options": '{"size": 64}'}, 422, "ConfigError"),  # not client-settable
        ({"text": "hi there", "animator_options": "[1]"}, 422, "ConfigError"),
        ({"text": "x" * 3000}, 422, "TextError"),
        ({"text": "!!! ..."}, 422, "TextError"),
        ({}, 400, "BadRequest"),
    ],
)
def test_bad_requests_get_typed_json_errors(make_client, portrait_png, data, status, type_):
    client = make_client()
    r = post_video(client, portrait_png, **data)
    assert r.status_code == status, r.text
    assert r.json()["error"]["type"] == type_
    assert set(r.json()) == {"error"} and set(r.json()["error"]) == {"type", "message"}
    assert client.get("/v1/videos").json()["data"] == []  # nothing was queued


def test_client_animator_options_are_applied(make_client, portrait_png):
    client = make_client()
    r = post_video(client, portrait_png, text="with options", animator_options='{"chunk_size": 3}')
    job = wait_job(client, r.json()["id"])
    assert job["status"] == "completed" and job["params"]["animator_options"] == {"chunk_size": 3}


def test_unknown_ids_are_404_and_never_reach_the_disk(make_client, tmp_path):
    client = make_client()
    for path in ("/v1/videos/vid_0000000000000000000a", "/v1/videos/..%2F..%2Fetc", "/v1/videos/vid_../content",
                 "/v1/avatars/av_zz", "/v1/conversations/conv_%2E%2E"):
        r = client.get(path)
        assert r.status_code == 404, path
        assert r.json()["error"]["type"] == "NotFound"
    assert client.get("/nope").json()["error"]["type"] == "NotFound"


def test_backends_lists_choices_and_limits(make_client):
    client = make_client(allowed_backends={"tts": ("fake",)})
    info = client.get("/v1/backends").json()
    assert [b["name"] for b in info["stages"]["tts"]] == ["fake"]
    assert info["stages"]["tts"][0]["voices"] == ["tone"]
    assert info["defaults"] == {"tts": "fake", "animator": "fake", "enhancer": None}
    fake = next(a for a in info["stages"]["animator"] if a["name"] == "fake")
    assert fake["options"] == [{"name": "chunk_size", "type": "int", "default": 8}]
    assert info["conversation"] is True and info["limits"]["max_fps"] == 30
    r = post_video(client, png_bytes(np.zeros((64, 64, 3), np.uint8)), text="hi there", tts="piper")
    assert r.status_code == 422


# -- saved avatars ---------------------------------------------------------------------------------
def test_avatar_crud_and_render_from_avatar(make_client, portrait_png, small_portrait):
    client = make_client()
    r = client.post("/v1/avatars", files={"image": ("me.png", portrait_png, "image/png")},
                    data={"name": "Tester", "persona": "You are a tester.", "voice": "tone",
                          "animator_options": '{"chunk_size": 5}'})
    assert r.status_code == 201, r.text
    avatar = r.json()
    aid = avatar["id"]
    assert aid.startswith("av_") and avatar["name"] == "Tester" and avatar["voice"] == "tone"
    assert avatar["portrait"] == {"width": 128, "height": 160} and avatar["version"] == 1
    assert client.get("/v1/avatars").json()["data"][0]["id"] == aid
    png = client.get(avatar["portrait_url"])
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
    from PIL import Image
    import io

    assert np.array_equal(np.asarray(Image.open(io.BytesIO(png.content)).convert("RGB")), small_portrait)
    thumb = client.get(avatar["thumbnail_url"])
    assert thumb.headers["content-type"] == "image/jpeg" and thumb.content[:3] == b"\xff\xd8\xff"

    r = client.patch(f"/v1/avatars/{aid}", json={"name": "Renamed", "persona": "Be brief."})
    assert r.status_code == 200 and r.json()["name"] == "Renamed" and r.json()["version"] == 2
    assert client.patch(f"/v1/avatars/{aid}", json={"voice": "nope"}).status_code == 422
    assert client.patch(f"/v1/avatars/{aid}", json={"portrait_path": "/etc/passwd"}).status_code == 422
    assert client.get(f"/v1/avatars/{aid}").json()["name"] == "Renamed"

    job = client.post("/v1/videos", data={"avatar_id": aid, "text": "from a saved avatar"}).json()
    done = wait_job(client, job["id"])
    assert done["status"] == "completed" and done["params"]["avatar_id"] == aid
    assert done["params"]["animator_options"] == {"chunk_size": 5} and done["params"]["voice"] == "tone"
    assert (done["result"]["width"], done["result"]["height"]) == (128, 160)

    bigger = png_bytes(np.full((200, 180, 3), 90, np.uint8))
    r = client.put(f"/v1/avatars/{aid}/portrait", files={"image": ("x.png", bigger, "image/png")})
    assert r.status_code == 200 and r.json()["portrait"] == {"width": 180, "height": 200} and r.json()["version"] == 3
    assert client.delete(f"/v1/avatars/{aid}").status_code == 204
    assert client.get(f"/v1/avatars/{aid}").status_code == 404
    assert client.delete(f"/v1/avatars/{aid}").status_code == 404
    assert client.post("/v1/videos", data={"avatar_id": aid, "text": "gone"}).status_code == 404


def test_avatar_limit(make_client, portrait_png):
    client = make_client(max_avatars=1)
    files = {"image": ("p.png", portrait_png, "image/png")}
    assert client.post("/v1/avatars", files=files).status_code == 201
    r = client.post("/v1/avatars", files=files)
    assert r.status_code == 409 and r.json()["error"]["type"] == "TooManyAvatars"


def test_large_portraits_are_stored_downscaled(make_client):
    client = make_client(max_portrait_size=200)
    image = png_bytes(np.full((400, 300, 3), 70, np.uint8))
    r = client.post("/v1/avatars", files={"image": ("p.png", image, "image/png")})
    assert r.json()["portrait"] == {"width": 150, "height": 200}


# -- conversations --------------------------------------------------------------------------------
def new_conversation(client, portrait_png, **avatar_fields):
    aid = client.post("/v1/avatars", files={"image": ("p.png", portrait_png, "image/png")},
                      data={"name": "Ada", **avatar_fields}).json()["id"]
    r = client.post("/v1/conversations", json={"avatar_id": aid})
    assert r.status_code == 201, r.text
    return r.json()


@pytest.mark.slow
def test_conversation_text_turns_with_memory(make_client, portrait_png, tmp_path):
    client = make_client()
    llm = client.app.state.talkinghead.engine.backend("llm", "fake")
    llm.enqueue("Paris is the capital of France.", "About two million people.")
    conv = new_conversation(client, portrait_png, persona="You are Ada, a geographer.")
    r = client.post(f"/v1/conversations/{conv['id']}/turns", data={"text": "What is the capital of France?"})
    assert r.status_code == 200, r.text
    turn = r.json()
    assert turn["status"] == "completed" and turn["kind"] == "turn" and turn["conversation_id"] == conv["id"]
    assert turn["result"]["question"] == "What is the capital of France?"
    assert turn["result"]["answer"] == "Paris is the capital of France."
    assert client.get(turn["content_url"]).content[4:8] == b"ftyp"
    vtt = client.get(turn["captions_url"]).text
    assert "<v Ada>Paris is the capital of France." in vtt

    r = client.post(f"/v1/conversations/{conv['id']}/turns", data={"text": "How many people live there?"})
    assert r.json()["result"]["answer"] == "About two million people."
    second = llm.requests[-1]
    assert [m.role for m in second] == ["system", "user", "assistant", "user"]
    assert second[0].content == "You are Ada, a geographer."
    assert second[2].content == "Paris is the capital of France."
    history = client.get(f"/v1/conversations/{conv['id']}").json()
    questions = [t["question"] for t in history["turns"]]
    assert questions == ["What is the capital of France?", "How many people live there?"]
    assert history["busy"] is None

    # typed text is never taken for a server-side file path (an existing .wav would otherwise be read)
    probe = tmp_path / "server_side.wav"
    probe.write_bytes(b"RIFF\x00\x00\x00\x00WAVE")
    r = client.post(f"/v1/conversations/{conv['id']}/turns", data={"text": str(probe)})
    assert r.status_code == 200, r.text
    assert llm.requests[-1][-1].content == str(probe)

    assert client.delete(f"/v1/conversations/{conv['id']}").status_code == 204
    assert client.get(f"/v1/conversations/{conv['id']}").status_code == 404


def test_conversation_spoken_turn_from_a_browser_recording(make_client, portrait_png):
    client = make_client()
    asr = client.app.state.talkinghead.engine.backend("asr", "fake")
    asr.enqueue("what time is it", "")
    conv = new_conversation(client, portrait_png)
    recording = webm_opus_bytes(speech(6))
    r = client.post(f"/v1/conversations/{conv['id']}/turns",
                    files={"audio": ("blob", recording, "audio/webm;codecs=opus")})
    assert r.status_code == 200, r.text
    assert r.json()["result"]["question"] == "what time is it" and r.json()["result"]["spoken"] is True
    heard = asr.calls[-1]
    assert abs(heard.duration - speech(6).duration) < 0.1  # the WebM/Opus was decoded with PyAV

    # nothing understood: a typed error, the job with it, and no turn remembered
    r = client.post(f"/v1/conversations/{conv['id']}/turns", files={"audio": ("blob", recording, "audio/webm")})
    assert r.status_code == 422
    body = r.json()
    assert body["error"]["type"] == "NothingUnderstoodError" and body["job"]["status"] == "failed"
    assert len(client.get(f"/v1/conversations/{conv['id']}").json()["turns"]) == 1


def test_one_turn_at_a_time_per_conversation(make_client, portrait_png):
    client = make_client()
    conv = new_conversation(client, portrait_png, animator="gated")
    r = client.post(f"/v1/conversations/{conv['id']}/turns?wait=false", data={"text": "first question here"})
    assert r.status_code == 202
    jid = r.json()["id"]
    assert GATE.started.acquire(timeout=30)
    second = client.post(f"/v1/conversations/{conv['id']}/turns", data={"text": "second question"})
    assert second.status_code == 409 and second.json()["error"]["type"] == "TurnInProgress"
    GATE.event.set()
    assert wait_job(client, jid)["status"] == "completed"
    third = client.post(f"/v1/conversations/{conv['id']}/turns", data={"text": "third question now"})
    assert third.status_code == 200 and third.json()["status"] == "completed"


def test_conversation_needs_an_llm(make_client, portrait_png):
    client = make_client(stages={"tts": "fake", "animator": "fake", "llm": None})
    aid = client.post("/v1/avatars", files={"image": ("p.png", portrait_png, "image/png")}).json()["id"]
    r = client.post("/v1/conversations", json={"avatar_id": aid})
    assert r.status_code == 503 and r.json()["error"]["type"] == "NoLLM"
    assert client.get("/v1/backends").json()["conversation"] is False
    r = client.post("/v1/conversations", json={"avatar_id": "av_00000000000000000000"})
    assert r.status_code == 404


# -- access control and limits ---------------------------------------------------------------------
def test_token_protects_the_api_but_not_the_page(make_client, portrait_png):
    client = make_client(token="s3cret")
    assert client.get("/v1/backends").status_code == 401
    assert client.get("/v1/backends").json()["error"]["type"] == "Unauthorized"
    assert client.get("/v1/backends", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/v1/backends", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    assert post_video(client, portrait_png, text="no token").status_code == 401
    assert client.get("/healthz").status_code == 200
    assert client.get("/").status_code == 200 and client.get("/static/js/main.js").status_code == 200
    # the page logs in once and gets an HttpOnly cookie for its media requests
    assert client.post("/v1/auth", json={"token": "wrong"}).status_code == 401
    r = client.post("/v1/auth", json={"token": "s3cret"})
    assert r.status_code == 204 and "httponly" in r.headers["set-cookie"].lower()
    assert "samesite=strict" in r.headers["set-cookie"].lower()
    assert client.get("/v1/backends").status_code == 200  # the cookie now goes along


def test_cors_is_off_by_default_and_configurable(make_client):
    client = make_client()
    pre = {"Origin": "http://elsewhere.example", "Access-Control-Request-Method": "POST"}
    r = client.options("/v1/videos", headers=pre)
    assert "access-control-allow-origin" not in r.headers
    r = client.get("/v1/backends", headers={"Origin": "http://elsewhere.example"})
    assert "access-control-allow-origin" not in r.headers
    client = make_client(cors_origins=("http://app.example",))
    r = client.options("/v1/videos", headers={**pre, "Origin": "http://app.example"})
    assert r.headers["access-control-allow-origin"] == "http://app.example"
    r = client.options("/v1/videos", headers=pre)
    assert r.headers.get("access-control-allow-origin") != "http://elsewhere.example"


def test_rate_limit_per_client(make_client, portrait_png):
    client = make_client(rate_limit=1.0, rate_burst=2)
    codes = [post_video(client, portrait_png, text="limit me").status_code for _ in range(3)]
    assert codes[:2] == [202, 202] and codes[2] == 429
    r = post_video(client, portrait_png, text="limit me")
    assert r.json()["error"]["type"] == "RateLimited" and int(r.headers["retry-after"]) >= 1
    assert client.get("/v1/videos").status_code == 200  # reads have their own, larger budget


def test_security_headers_on_the_page(make_client):
    client = make_client()
    r = client.get("/")
    assert r.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert r.headers["x-content-type-options"] == "nosniff"
    assert '<script type="module" src="static/js/main.js">' in r.text


def api_summary(schema: dict) -> dict:
    """Paths, methods, parameters, body fields and response codes of an OpenAPI schema (what the
    docs promise), without the details that differ between FastAPI versions."""
    components = schema.get("components", {}).get("schemas", {})

    def body_fields(op: dict) -> list[str]:
        for media in op.get("requestBody", {}).get("content", {}).values():
            ref = media.get("schema", {}).get("$ref", "")
            return sorted(components.get(ref.rsplit("/", 1)[-1], {}).get("properties", {}))
        return []

    return {
        path: {
            method: {"params": sorted(p["name"] for p in op.get("parameters", [])), "body": body_fields(op),
                     "responses": sorted(op.get("responses", {}))}
            for method, op in ops.items()
        }
        for path, ops in schema["paths"].items()
    }


def test_openapi_schema_is_served_and_matches_the_docs(make_client):
    from pathlib import Path

    client = make_client()
    schema = client.get("/openapi.json").json()
    for path in ("/v1/videos", "/v1/videos/{video_id}", "/v1/videos/{video_id}/content", "/v1/avatars",
                 "/v1/avatars/{avatar_id}", "/v1/conversations/{conversation_id}/turns", "/v1/backends"):
        assert path in schema["paths"], path
    assert set(schema["paths"]["/v1/videos/{video_id}"]) == {"get", "delete"}
    assert api_summary(schema)["/v1/videos"]["post"]["body"] == [
        "animator", "animator_options", "audio", "avatar_id", "emotion", "enhancer", "fps", "image", "text", "tts",
        "voice"]
    assert "ErrorBody" in schema["components"]["schemas"]
    documented = json.loads((Path(__file__).parents[1] / "docs" / "openapi.json").read_text())
    assert api_summary(documented) == api_summary(schema), (
        "docs/openapi.json is out of date; regenerate it with: python -m talkinghead.server.openapi > docs/openapi.json"
    )


def test_app_mounts_inside_an_existing_app(fakes, tmp_path, portrait_png):
    from fastapi import FastAPI

    parent = FastAPI()

    @parent.get("/")
    def home():
        return {"app": "parent"}

    child = create_app(fake_settings(tmp_path))
    parent.mount("/th", child)
    with TestClient(parent) as client:
        assert client.get("/").json() == {"app": "parent"}
        assert "talkinghead" in client.get("/th/").text
        assert client.get("/th/static/js/api.js").status_code == 200
        r = client.post("/th/v1/videos", files={"image": ("p.png", portrait_png, "image/png")},
                        data={"text": "mounted under a prefix"})
        assert r.status_code == 202, r.text
        jid = r.json()["id"]
        deadline = time.monotonic() + 60
        while (job := client.get(f"/th/v1/videos/{jid}").json())["status"] != "completed":
            assert time.monotonic() < deadline and job["status"] in ("queued", "in_progress"), job
            time.sleep(0.05)
        assert job["content_url"] == f"/th/v1/videos/{jid}/content"
        assert client.get(job["content_url"]).content[4:8] == b"ftyp"
    child.state.talkinghead.close()  # a mounted app's lifespan does not run; the host closes it


@pytest.mark.slow
def test_turn_survives_the_client_hanging_up(fakes, tmp_path, portrait_png):
    """A real uvicorn server: the client gives up waiting for its answer; the turn is still made."""
    import httpx

    from talkinghead.testing.app_server import AppServer

    add_plugin(GatedPlugin(), name="gated-animator")
    GATE.reset()
    with AppServer(create_app(fake_settings(tmp_path))) as server, httpx.Client(base_url=server.url) as client:
        aid = client.post("/v1/avatars", files={"image": ("p.png", portrait_png, "image/png")},
                          data={"animator": "gated"}).json()["id"]
        cid = client.post("/v1/conversations", json={"avatar_id": aid}).json()["id"]
        with pytest.raises(httpx.TimeoutException):
            client.post(f"/v1/conversations/{cid}/turns", data={"text": "are you still there"}, timeout=1.0)
        assert GATE.started.acquire(timeout=30)
        GATE.event.set()
        deadline = time.monotonic() + 30
        while not (turns := client.get(f"/v1/conversations/{cid}").json()["turns"]):
            assert time.monotonic() < deadline, "the turn was dropped with its client"
            time.sleep(0.05)
        assert turns[0]["question"] == "are you still there"
        job = client.get(f"/v1/videos/{turns[0]['id']}").json()
        assert job["status"] == "completed" and client.get(job["content_url"]).content[4:8] == b"ftyp"


def test_emotion_goes_to_animators_that_take_one(make_client, portrait_png):
    client = make_client()
    mood = next(a for a in client.get("/v1/backends").json()["stages"]["animator"] if a["name"] == "mood")
    assert mood["options"] == [{"name": "emotion", "type": "choice", "default": "neutral",
                                "choices": ["neutral", "happy", "sad"]}]
    r = post_video(client, portrait_png, text="I am so glad", animator="mood", emotion="happy")
    job = wait_job(client, r.json()["id"])
    assert job["status"] == "completed" and job["params"]["animator_options"] == {"emotion": "happy"}
    engine = client.app.state.talkinghead.engine
    assert engine.backend("animator", "mood", {"emotion": "happy"}).emotion == "happy"
    r = post_video(client, portrait_png, text="I am so glad", animator="mood", emotion="furious")
    assert r.status_code == 422 and "emotion must be" in r.json()["error"]["message"]


def test_typed_conversation_needs_no_asr(make_client, portrait_png):
    client = make_client(stages={"tts": "fake", "animator": "fake", "llm": "fake", "asr": None})
    conv = new_conversation(client, portrait_png)
    r = client.post(f"/v1/conversations/{conv['id']}/turns", data={"text": "typed questions work"})
    assert r.status_code == 200 and r.json()["status"] == "completed"
    r = client.post(f"/v1/conversations/{conv['id']}/turns",
                    files={"audio": ("q.webm", webm_opus_bytes(speech(4)), "audio/webm")})
    assert r.status_code == 422 and "no speech recognition" in r.json()["error"]["message"]
