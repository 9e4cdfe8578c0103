"""The server's parts on their own: store, session registry, rate limiter, captions, settings,
the ``serve`` command (its flags, and a real process answering on 127.0.0.1)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from talkinghead.errors import ConfigError
from talkinghead.server.render import webvtt
from talkinghead.server.sessions import SessionRegistry
from talkinghead.server.settings import ServerSettings
from talkinghead.server.store import LocalStore, Store, UnknownIdError, check_id, new_id


# -- store -------------------------------------------------------------------------------------------
def test_local_store_records_files_and_reload(tmp_path):
    store = LocalStore(tmp_path)
    assert isinstance(store, Store)
    jid = new_id("job")
    store.put("job", jid, {"status": "queued", "n": 0})
    store.file_path("job", jid, "video.mp4").write_bytes(b"mp4")
    store.commit_file("job", jid, "video.mp4")
    assert store.open_file("job", jid, "video.mp4").read_bytes() == b"mp4"
    assert store.open_file("job", jid, "captions.vtt") is None
    # records come back after a restart; stray folders are ignored, half-deleted ones removed
    (tmp_path / "job" / "not-an-id").mkdir()
    (tmp_path / "job" / f".tmp-{jid}-dead").mkdir()
    again = LocalStore(tmp_path)
    assert again.get("job", jid) == {"status": "queued", "n": 0} and again.ids("job") == [jid]
    assert not (tmp_path / "job" / f".tmp-{jid}-dead").exists()
    assert again.delete("job", jid) and not (tmp_path / "job" / jid).exists()
    assert not again.delete("job", jid) and again.get("job", jid) is None


def test_store_refuses_anything_but_its_own_ids_and_names(tmp_path):
    store = LocalStore(tmp_path)
    for bad in ("../x", "vid_../../etc", "/etc/passwd", "vid_" + "0" * 19, "av_" + "0" * 20, "", "vid_" + "G" * 20):
        with pytest.raises(UnknownIdError):
            check_id("job", bad)
        assert store.get("job", bad) is None and not store.delete("job", bad)
        with pytest.raises(UnknownIdError):
            store.file_path("job", bad, "video.mp4")
    with pytest.raises(ValueError):
        store.file_path("job", new_id("job"), "../../evil.sh")
    assert store.open_file("job", new_id("job"), "record.json") is None


def test_store_update_is_atomic_under_threads(tmp_path):
    store = LocalStore(tmp_path)
    aid = new_id("avatar")
    store.put("avatar", aid, {"n": 0})

    def bump():
        for _ in range(50):
            store.update("avatar", aid, lambda r: r.update(n=r["n"] + 1))

    threads = [threading.Thread(target=bump) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert store.get("avatar", aid)["n"] == 200
    assert LocalStore(tmp_path).get("avatar", aid)["n"] == 200
    with pytest.raises(KeyError):
        store.update("avatar", new_id("avatar"), lambda r: None)


# -- sessions ----------------------------------------------------------------------------------------
class Thing:
    def __init__(self, name):
        self.name, self.closed = name, 0

    def close(self):
        self.closed += 1


def test_session_registry_bounds_expires_and_closes():
    now = [0.0]
    reg = SessionRegistry(max_sessions=2, max_idle=10, clock=lambda: now[0])
    a = reg.get_or_create("a", lambda: Thing("a"))
    assert reg.get_or_create("a", lambda: Thing("other")) is a
    b = reg.get_or_create("b", lambda: Thing("b"))
    reg.get("a")  # a is now the most recently used
    c = reg.get_or_create("c", lambda: Thing("c"))
    assert b.closed == 1 and reg.keys() == ["a", "c"]  # the least recently used went
    fresh = reg.get_or_create("a", lambda: Thing("a2"), valid=lambda s: s.name == "a2")
    assert a.closed == 1 and fresh.name == "a2"
    now[0] = 5
    reg.get("c")
    now[0] = 12
    assert reg.expire() == 1 and fresh.closed == 1 and reg.keys() == ["c"]
    assert reg.drop("c") and c.closed == 1 and not reg.drop("c")
    d = reg.get_or_create("d", lambda: Thing("d"))
    reg.close_all()
    assert d.closed == 1 and len(reg) == 0


# -- rate limits --------------------------------------------------------------------------------------
def test_session_registry_add_refuses_past_the_bound_and_forget_keeps_it_open():
    closed = []

    class S:
        def __init__(self, name):
            self.name = name

        def close(self):
            closed.append(self.name)

    reg = SessionRegistry(max_sessions=2, max_idle=10)
    a, b = S("a"), S("b")
    assert reg.add("a", a) and reg.add("b", b)
    assert not reg.add("c", S("c")) and not reg.add("a", S("a2"))  # full; taken: nothing evicted
    assert closed == [] and sorted(reg.keys()) == ["a", "b"]
    assert not reg.forget("a", b) and reg.forget("a", a)  # only the session itself is forgotten
    assert reg.keys() == ["b"] and closed == []
    assert reg.add("c", S("c"))


def test_live_settings_and_ice_servers(tmp_path):
    s = ServerSettings(data_dir=tmp_path, ice_servers=["stun:stun.example.com:3478",
                                                       {"urls": ["turn:t.example.com:3478"], "username": "u",
                                                        "credential": "p"}],
                       ice_addresses=["127.0.0.1", "::1"])
    assert s.ice_servers == ({"urls": ["stun:stun.example.com:3478"]},
                             {"urls": ["turn:t.example.com:3478"], "username": "u", "credential": "p"})
    assert s.ice_addresses == ("127.0.0.1", "::1") and s.max_live_sessions == 1 and s.live_fps == 25
    for bad in ({"ice_servers": ["http://x"]}, {"ice_servers": [{"urls": "turn:x"}]},
                {"ice_servers": [{"urls": "stun:x", "password": "p"}]}, {"ice_addresses": ["eth0"]},
                {"live_vad": "webrtc"}, {"max_live_sessions": 0}, {"live_fps": 90}, {"live_idle": -1}):
        with pytest.raises(ConfigError):
            ServerSettings(data_dir=tmp_path, **bad)


def test_rate_limiter_bucket():
    from talkinghead.server.errors import ApiError
    from talkinghead.server.security import RateLimiter

    now = [0.0]
    limiter = RateLimiter(per_minute=60, burst=2, clock=lambda: now[0])
    limiter.hit("a")
    limiter.hit("a")
    with pytest.raises(ApiError) as exc:
        limiter.hit("a")
    assert exc.value.status == 429 and exc.value.headers["Retry-After"] == "1"
    limiter.hit("b")  # per client
    now[0] = 1.0
    limiter.hit("a")  # one token back after a second


def test_token_check():
    from talkinghead.server.errors import ApiError
    from talkinghead.server.security import check_token

    check_token(None, None, None)
    check_token("t0k", "Bearer t0k", None)
    check_token("t0k", None, "t0k")
    for header, cookie in ((None, None), ("Bearer nope", None), ("Basic t0k", None), ("Bearer t0k0", "x")):
        with pytest.raises(ApiError):
            check_token("t0k", header, cookie)


# -- captions -----------------------------------------------------------------------------------------
def test_webvtt_cues_cover_the_video():
    vtt = webvtt([("Ada", "Hello there. <b>How</b> are you --> today?")], 3.0)
    lines = vtt.splitlines()
    assert lines[0] == "WEBVTT"
    assert lines[2] == "1" and lines[3].startswith("00:00:00.000 --> ")
    assert lines[4] == "<v Ada>Hello there."
    assert "&lt;b&gt;How&lt;/b&gt;" in vtt and "--&gt;" in vtt
    assert vtt.rstrip().splitlines()[-2].endswith("--> 00:00:03.000")
    assert webvtt([("", "")], 1.0).strip() == "WEBVTT"


# -- settings -----------------------------------------------------------------------------------------
def test_settings_validate(tmp_path):
    s = ServerSettings(data_dir=tmp_path, stages={"llm": "openai"})
    assert s.stages["tts"] == "piper" and s.stages["llm"] == "openai"
    assert s.with_(job_workers=3).job_workers == 3
    for bad in ({"job_workers": 0}, {"max_image_pixels": 10**9}, {"max_audio_seconds": 10**6}, {"max_fps": 120},
                {"stages": {"painter": "x"}}, {"token": "  "}):
        with pytest.raises(ConfigError):
            ServerSettings(data_dir=tmp_path, **bad)
    with pytest.raises(ConfigError):
        s.with_(no_such_setting=1)


# -- the serve command --------------------------------------------------------------------------------
def test_serve_flags_build_settings(tmp_path, monkeypatch):
    from talkinghead.cli import build_parser
    from talkinghead.cli.serve import is_loopback, server_settings

    monkeypatch.setenv("TALKINGHEAD_TOKEN", "from-env")
    args = build_parser().parse_args([
        "serve", "--port", "9", "--data-dir", str(tmp_path), "--jobs", "2", "--expire", "60",
        "--llm", "openai", "--set", "llm.base_url=http://127.0.0.1:1/v1", "--set", "llm.temperature=0.3",
        "--cors-origin", "http://a.example", "--enhancer", "none", "--max-live", "3",
        "--ice-server", "stun:stun.example.com:3478", "--ice-server", "turn:turn.example.com:3478",
        "--turn-username", "u", "--turn-credential", "p", "--ice-address", "127.0.0.1",
    ])
    s = server_settings(args)
    assert s.token == "from-env" and s.job_workers == 2 and s.job_ttl == 60 and s.data_dir == tmp_path
    assert s.stages["llm"] == "openai" and s.stages["enhancer"] is None
    assert s.backend_options == {"llm": {"openai": {"base_url": "http://127.0.0.1:1/v1", "temperature": 0.3}}}
    assert s.cors_origins == ("http://a.example",)
    assert s.max_live_sessions == 3 and s.ice_addresses == ("127.0.0.1",)
    assert s.ice_servers == ({"urls": ["stun:stun.example.com:3478"]},
                             {"urls": ["turn:turn.example.com:3478"], "username": "u", "credential": "p"})
    with pytest.raises(ConfigError):
        server_settings(build_parser().parse_args(["serve", "--set", "base_url=x"]))
    with pytest.raises(ConfigError):  # a TURN server needs credentials
        server_settings(build_parser().parse_args(["serve", "--ice-server", "turn:t.example.com"]))
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("example.com")


@pytest.mark.slow
def test_talkinghead_serve_runs_and_answers(tmp_path):
    pytest.importorskip("uvicorn")
    import socket

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "talkinghead.cli", "serve", "--port", str(port), "--data-dir", str(tmp_path),
         "--token", "tok"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.communicate()
                assert time.monotonic() < deadline, "talkinghead serve did not start within 60 s"
                time.sleep(0.2)
        assert r.json()["status"] == "ok"
        assert httpx.get(f"http://127.0.0.1:{port}/v1/backends").status_code == 401
        r = httpx.get(f"http://127.0.0.1:{port}/v1/backends", headers={"Authorization": "Bearer tok"})
        assert r.status_code == 200 and r.json()["defaults"]["tts"] == "piper"
        assert "<title>talkinghead</title>" in httpx.get(f"http://127.0.0.1:{port}/").text
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    assert f"http://127.0.0.1:{port}/" in out
    assert proc.returncode in (0, -signal.SIGINT, 130)


def test_jobs_left_running_by_a_previous_process_are_marked_failed(tmp_path):
    from talkinghead.server.jobs import JobQueue

    store = LocalStore(tmp_path)
    jid = new_id("job")
    store.put("job", jid, {"id": jid, "status": "in_progress", "progress": 0.4})
    JobQueue(LocalStore(tmp_path), workers=1, max_queued=2, ttl=60)
    record = LocalStore(tmp_path).get("job", jid)
    assert record["status"] == "failed" and record["error"]["type"] == "Interrupted"
    assert record["expires_at"] > record["finished_at"]
