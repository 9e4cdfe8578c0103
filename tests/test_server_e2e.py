"""The server on the real offline stack (piper, viseme, mp4; faster-whisper and an OpenAI-protocol
LLM for conversations), over real HTTP on 127.0.0.1 with httpx."""

from __future__ import annotations

import io
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("piper")
pytest.importorskip("mediapipe")
pytest.importorskip("av")
httpx = pytest.importorskip("httpx")

from server_helpers import mouth_box, png_bytes, webm_opus_bytes  # noqa: E402

from talkinghead.server import ServerSettings, create_app  # noqa: E402
from talkinghead.testing.app_server import AppServer  # noqa: E402
from talkinghead.testing.openai_server import OpenAIServer  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def llm():
    with OpenAIServer(default_answer="I am an astronaut, and I love flying to space.") as server:
        yield server


@pytest.fixture(scope="module")
def server(llm, tmp_path_factory):
    pytest.importorskip("faster_whisper")
    settings = ServerSettings(
        data_dir=tmp_path_factory.mktemp("server"),
        job_workers=2,
        stages={"tts": "piper", "animator": "viseme", "writer": "mp4", "asr": "faster-whisper", "llm": "openai"},
        backend_options={"llm": {"openai": {"base_url": llm.base_url, "model": "test", "api_key": "test",
                                            "backoff": 0.01}},
                         "writer": {"mp4": {"preset": "ultrafast"}}},
    )
    with AppServer(create_app(settings)) as srv:
        with httpx.Client(base_url=srv.url, timeout=120) as client:
            yield client


def wait(client, jid, timeout=180):
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/v1/videos/{jid}").json()
        if job["status"] not in ("queued", "in_progress"):
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.2)


def frames_of(data: bytes) -> np.ndarray:
    import av

    with av.open(io.BytesIO(data)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


def test_concurrent_renders_on_the_offline_stack(server, portrait_path):
    image = portrait_path.read_bytes()
    texts = ["Hello from the first video.", "The second video says something else.", "And a third one, at ten fps."]

    def submit(i_text):
        i, text = i_text
        data = {"text": text, "fps": "10" if i == 2 else "20"}
        return server.post("/v1/videos", files={"image": ("a.png", image, "image/png")}, data=data)

    with ThreadPoolExecutor(3) as pool:
        responses = list(pool.map(submit, enumerate(texts)))
    assert [r.status_code for r in responses] == [202] * 3, [r.text for r in responses]
    jobs = [wait(server, r.json()["id"]) for r in responses]
    x1, y1, x2, y2 = mouth_box(portrait_path)
    assert [j["status"] for j in jobs] == ["completed"] * 3, jobs
    assert [j["result"]["fps"] for j in jobs] == [20, 20, 10]
    for job in jobs:
        data = server.get(job["content_url"]).content
        frames = frames_of(data)
        assert frames.shape[0] == job["result"]["frames"] and frames.shape[1:3] == (512, 512)
        # the mouth moves between frames (the viseme animator at work); a corner of the background does not
        mouth = np.abs(np.diff(frames[:, y1:y2, x1:x2].astype(np.float32), axis=0)).mean(axis=(1, 2, 3))
        corner = np.abs(np.diff(frames[:, :40, :40].astype(np.float32), axis=0)).mean(axis=(1, 2, 3))
        assert mouth.max() > 3.0 and mouth.max() > 4 * corner.max() + 0.5, (mouth.max(), corner.max())
        part = server.get(job["content_url"], headers={"Range": "bytes=1000-1999"})
        assert part.status_code == 206 and part.content == data[1000:2000]


def test_no_face_is_a_422_with_the_library_error(server):
    blank = png_bytes(np.full((256, 256, 3), 128, np.uint8))
    r = server.post("/v1/avatars", files={"image": ("blank.png", blank, "image/png")})
    assert r.status_code == 422 and r.json()["error"]["type"] == "NoFaceError", r.text
    r = server.post("/v1/videos", files={"image": ("blank.png", blank, "image/png")}, data={"text": "hello there"})
    job = wait(server, r.json()["id"])
    assert job["status"] == "failed" and job["error"]["type"] == "NoFaceError" and job["error"]["status"] == 422


def test_spoken_conversation_turn(server, llm, portrait_path):
    from talkinghead.backends.piper import PiperTTS

    r = server.post("/v1/avatars", files={"image": ("a.png", portrait_path.read_bytes(), "image/png")},
                    data={"name": "Eileen", "persona": "You are an astronaut."})
    assert r.status_code == 201, r.text
    conv = server.post("/v1/conversations", json={"avatar_id": r.json()["id"]}).json()
    question = PiperTTS(noise_scale=0.0, noise_w_scale=0.0).synthesize("What do you like to do at work?")
    r = server.post(f"/v1/conversations/{conv['id']}/turns",
                    files={"audio": ("q.webm", webm_opus_bytes(question), "audio/webm")})
    assert r.status_code == 200, r.text
    turn = r.json()
    heard = turn["result"]["question"].lower()
    # the words that carry the question (tiny.en on Opus-coded speech may hear "at" as "it")
    assert "like to do" in heard and heard.rstrip("?. ").endswith("work"), heard
    assert turn["result"]["answer"] == "I am an astronaut, and I love flying to space."
    sent = llm.chat_requests()[-1].json["messages"]
    assert sent[0] == {"role": "system", "content": "You are an astronaut."}
    assert heard in sent[-1]["content"].lower()
    assert turn["result"]["has_audio"] and turn["result"]["duration"] > 1.5
    assert "<v Eileen>I am an astronaut" in server.get(turn["captions_url"]).text
