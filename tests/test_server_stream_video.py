"""``POST /v1/videos?stream=true``: the video as fragmented MP4 while it is rendered, decoded
incrementally with PyAV over real HTTP; the job behind it, cancelling, and errors before the first byte."""

from __future__ import annotations

import time

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("av")
httpx = pytest.importorskip("httpx")

from av_helpers import IncrementalDecoder, lag_of_best_match  # noqa: E402
from server_helpers import fake_settings, png_bytes, wait_job  # noqa: E402

from talkinghead.server import create_app  # noqa: E402
from talkinghead.testing.app_server import AppServer  # noqa: E402

SIZE = 192
_y1, _y2, _x1, _x2 = int(SIZE * 0.25), int(SIZE * 0.75), int(SIZE * 0.3), int(SIZE * 0.7)
_cy = int(_y1 + 0.8 * (_y2 - _y1))
MOUTH = (slice(_cy - 9, _cy + 10), slice(_x1 + (_x2 - _x1) // 3, _x2 - (_x2 - _x1) // 3))
TEXT = "One two three four five. Six seven eight nine ten. Eleven twelve thirteen fourteen fifteen."
IMAGE = png_bytes(np.full((SIZE, SIZE, 3), 180, np.uint8))


def bar(image: np.ndarray) -> float:
    return float(180.0 - image[MOUTH].astype(np.float32).mean())


@pytest.fixture
def server(fakes, tmp_path):
    """A real server whose fake animator takes 40 ms per two frames (a render lasts seconds)."""
    options = {"writer": {"mp4": {"preset": "ultrafast"}}, "animator": {"fake": {"delay": 0.04, "chunk_size": 2}}}
    app = create_app(fake_settings(tmp_path, backend_options=options))
    with AppServer(app) as s, httpx.Client(base_url=s.url, timeout=60) as client:
        yield client


def post(client, data, **kw):
    return client.build_request("POST", "/v1/videos", params={"stream": "true"},
                                files={"image": ("p.png", IMAGE, "image/png")}, data=data, **kw)


@pytest.mark.slow
def test_stream_true_answers_with_fmp4_that_decodes_while_it_renders(server):
    decoder = IncrementalDecoder(measure=bar)
    received = bytearray()
    response = server.send(post(server, {"text": TEXT, "fps": "25"}), stream=True)
    try:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"] == 'video/mp4; codecs="avc1.42E01F, mp4a.40.2"'
        jid = response.headers["x-talkinghead-job"]
        assert response.headers["location"].endswith(f"/v1/videos/{jid}")
        for data in response.iter_bytes():
            received += data
            decoder.feed(data)
        last_byte = time.perf_counter()
    finally:
        response.close()
    decoder.close()
    assert decoder.error is None, decoder.error
    # the first frame was on screen long before the render ended
    assert decoder.first_video_at is not None and decoder.first_video_at < last_byte - 1.0
    job = wait_job(server, jid)
    assert job["status"] == "completed" and job["params"]["stream"] is True
    result = job["result"]
    assert result["streamed"] and result["frames"] == len(decoder.video) and result["fps"] == 25
    assert (result["width"], result["height"]) == (SIZE, SIZE) and decoder.sample_rate == 48000
    # the stream is the job's video: the same bytes, fetched later (and seekable)
    assert server.get(job["content_url"]).content == bytes(received)
    assert "WEBVTT" in server.get(job["captions_url"]).text
    lag, scores = lag_of_best_match(decoder.video, decoder.samples(48000), 48000, 25)
    assert abs(lag) <= 1 and scores[lag] > 0.6, scores


@pytest.mark.slow
def test_stream_true_survives_the_client_and_can_be_cancelled(server):
    # the client goes away after the first bytes: the job still completes
    response = server.send(post(server, {"text": TEXT}), stream=True)
    jid = response.headers["x-talkinghead-job"]
    next(response.iter_bytes())
    response.close()
    assert wait_job(server, jid)["status"] == "completed"
    # DELETE while streaming: the stream ends early, the job is cancelled and leaves no video
    response = server.send(post(server, {"text": TEXT * 2}), stream=True)
    jid = response.headers["x-talkinghead-job"]
    got, deleted = 0, False
    t0 = time.monotonic()
    for data in response.iter_bytes():  # the response ends once the job is cancelled
        got += len(data)
        if got > 2000 and not deleted:
            assert server.delete(f"/v1/videos/{jid}").status_code == 200
            deleted = True
    response.close()
    job = wait_job(server, jid)
    assert deleted and job["status"] == "cancelled" and time.monotonic() - t0 < 30
    assert server.get(f"/v1/videos/{jid}/content").status_code == 409


def test_stream_true_errors_before_the_first_byte_are_json(server):
    r = server.send(post(server, {}))
    assert r.status_code == 400 and r.json()["error"]["type"] == "BadRequest"
    r = server.send(post(server, {"text": TEXT, "fps": "13"}))
    assert r.status_code == 422 and r.json()["error"]["type"] == "ConfigError"
    assert "15, 20, 24, 25 or 30" in r.json()["error"]["message"]
    r = server.post("/v1/videos", params={"stream": "true"}, files={"image": ("p.png", b"GIF89a....", "image/gif")},
                    data={"text": "hi"})
    assert r.status_code == 415 and r.json()["error"]["type"] == "UnsupportedMediaType"
