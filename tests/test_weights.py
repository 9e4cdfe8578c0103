"""Weights manager against a local HTTP server (range requests, cut transfers, bad checksums,
mirror fallback, offline errors) and a fake Hugging Face endpoint."""

from __future__ import annotations

import hashlib
import io
import os
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from talkinghead.cli.weights import cmd_download, cmd_list, cmd_path, cmd_verify
from talkinghead.errors import ConfigError, WeightsMissingError
from talkinghead.testing.openai_server import QuietHTTPServer
from talkinghead.weights import (
    WeightBundle,
    WeightFile,
    WeightRegistry,
    WeightsChecksumError,
    WeightsManager,
    WeightsUnverifiedError,
    default_weights_dir,
    parse_hf_url,
    resolve,
)
from talkinghead.weights.download import http_download

requests = pytest.importorskip("requests")

PAYLOAD = bytes(range(256)) * 1200  # 307,200 bytes
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()
OTHER = b"not the weights you are looking for" * 1000
COMMIT = "0123456789abcdef0123456789abcdef01234567"


class Server:
    """A tiny file server: Range support, a connection cut mid-transfer, a request log."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.cut_once: dict[str, int] = {}  # path -> bytes to send before cutting (first GET only)
        self.no_range: set[str] = set()
        self.fail_status: dict[str, int] = {}
        self.log: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _route(self) -> tuple[str, bytes | None, dict[str, str]]:
                path = self.path.split("?")[0]
                extra: dict[str, str] = {}
                m = re.match(r"^/(?:spaces/|datasets/)?([^/]+/[^/]+)/resolve/([^/]+)/(.+)$", path)
                if m:  # a Hugging Face style URL: serve /hf/<repo>/<path>
                    key = f"/hf/{m.group(1)}/{m.group(3)}"
                    data = server.files.get(key)
                    if data is not None:
                        extra = {"X-Repo-Commit": COMMIT, "ETag": '"' + hashlib.sha256(data).hexdigest() + '"'}
                    return key, data, extra
                return path, server.files.get(path), extra

            def _send(self, head_only: bool) -> None:
                key, data, extra = self._route()
                entry = {"method": self.command, "path": key, "range": self.headers.get("Range"), "sent": 0}
                server.log.append(entry)
                if key in server.fail_status:
                    self.send_response(server.fail_status[key])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if data is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                start, status = 0, 200
                rng = self.headers.get("Range")
                if rng and key not in server.no_range:
                    m = re.match(r"bytes=(\d+)-$", rng)
                    start = int(m.group(1))
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    status = 206
                body = data[start:]
                self.send_response(status)
                for k, v in extra.items():
                    self.send_header(k, v)
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Length", str(len(body)))
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.end_headers()
                if head_only:
                    return
                cut = server.cut_once.pop(key, None)
                # record before writing: the client may finish reading before this thread resumes
                if cut is not None:
                    entry["sent"] = cut
                    self.wfile.write(body[:cut])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                entry["sent"] = len(body)
                self.wfile.write(body)

            def do_GET(self):
                self._send(False)

            def do_HEAD(self):
                self._send(True)

        self.httpd = QuietHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def gets(self, path: str) -> list[dict]:
        return [e for e in self.log if e["path"] == path and e["method"] == "GET"]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def server():
    s = Server()
    yield s
    s.close()


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def make_manager(tmp_path: Path, *files: WeightFile, bundles=()) -> WeightsManager:
    reg = WeightRegistry()
    for wf in files:
        reg.add(wf)
    for b in bundles:
        reg.add_bundle(b)
    session = requests.Session()
    session.trust_env = False
    return WeightsManager(
        tmp_path / "weights", registry=reg, session=session, retries=2, backoff=0.0, sleep=lambda s: None, timeout=10
    )


def wf(name: str, urls, sha=PAYLOAD_SHA, size=len(PAYLOAD), group="test") -> WeightFile:
    return WeightFile(
        name=name, filename=f"{name}.bin", urls=tuple(urls), sha256=sha, size=size, licence="MIT", group=group
    )


# ------------------------------------------------------------------------------ downloads


def test_fresh_download_verify_and_progress(server, tmp_path):
    server.files["/a.bin"] = PAYLOAD
    wm = make_manager(tmp_path, wf("a", [server.url + "/a.bin"]))
    seen = []
    paths = wm.download("a", progress=lambda f, done, total: seen.append((f.name, done, total)))
    assert paths["a"] == tmp_path / "weights" / "test" / "a.bin"
    assert paths["a"].read_bytes() == PAYLOAD
    assert not paths["a"].with_name("a.bin.part").exists()
    assert seen[-1] == ("a", len(PAYLOAD), len(PAYLOAD))
    assert [s.state for s in wm.verify("a")] == ["ok"]
    # a second download is a no-op: no new request
    n = len(server.gets("/a.bin"))
    wm.download("a")
    assert len(server.gets("/a.bin")) == n


def test_resume_after_interrupted_transfer_uses_range(server, tmp_path):
    server.files["/big.bin"] = PAYLOAD
    server.cut_once["/big.bin"] = 100_000
    wm = make_manager(tmp_path, wf("big", [server.url + "/big.bin"]))
    wm.download("big")
    assert wm.path("big").read_bytes() == PAYLOAD
    gets = server.gets("/big.bin")
    assert len(gets) == 2
    assert gets[0]["range"] is None and gets[0]["sent"] == 100_000
    # what arrived before the cut (up to the last complete read) was kept; only the rest is fetched
    kept = int(re.fullmatch(r"bytes=(\d+)-", gets[1]["range"]).group(1))
    assert 0 < kept <= 100_000
    assert gets[1]["sent"] == len(PAYLOAD) - kept


def test_resume_of_a_part_left_by_an_earlier_run(server, tmp_path):
    server.files["/p.bin"] = PAYLOAD
    wm = make_manager(tmp_path, wf("p", [server.url + "/p.bin"]))
    part = wm.path("p").with_name("p.bin.part")
    part.parent.mkdir(parents=True)
    part.write_bytes(PAYLOAD[:5000])
    wm.download("p")
    assert wm.path("p").read_bytes() == PAYLOAD
    (get,) = server.gets("/p.bin")
    assert get["range"] == "bytes=5000-" and get["sent"] == len(PAYLOAD) - 5000


def test_server_without_range_support_restarts(server, tmp_path):
    server.files["/n.bin"] = PAYLOAD
    server.no_range.add("/n.bin")
    wm = make_manager(tmp_path, wf("n", [server.url + "/n.bin"]))
    part = wm.path("n").with_name("n.bin.part")
    part.parent.mkdir(parents=True)
    part.write_bytes(b"garbage!" * 10)
    wm.download("n")
    assert wm.path("n").read_bytes() == PAYLOAD


def test_bad_checksum_raises_and_leaves_no_file(server, tmp_path):
    server.files["/bad.bin"] = PAYLOAD[:-1] + b"\x00"  # same size, wrong content
    wm = make_manager(tmp_path, wf("bad", [server.url + "/bad.bin"]))
    with pytest.raises(WeightsChecksumError) as ei:
        wm.download("bad")
    msg = str(ei.value)
    assert "sha256 mismatch" in msg and PAYLOAD_SHA in msg
    folder = wm.path("bad").parent
    assert list(folder.iterdir()) == []  # neither the file nor a .part is left
    assert isinstance(ei.value, WeightsMissingError)


def test_wrong_size_from_server_is_refused(server, tmp_path):
    server.files["/short.bin"] = PAYLOAD[:1000]
    wm = make_manager(tmp_path, wf("short", [server.url + "/short.bin"]))
    with pytest.raises(WeightsMissingError, match="wrong file"):
        wm.download("short")
    assert not wm.path("short").exists()


def test_mirror_fallback(server, tmp_path):
    server.files["/good.bin"] = PAYLOAD
    server.files["/corrupt.bin"] = OTHER
    server.fail_status["/down.bin"] = 503
    f = wf("m", [server.url + "/missing.bin", server.url + "/down.bin", server.url + "/good.bin"])
    wm = make_manager(tmp_path, f)
    wm.download("m")
    assert wm.path("m").read_bytes() == PAYLOAD
    assert len(server.gets("/missing.bin")) == 1  # 404: permanent, not retried
    assert len(server.gets("/down.bin")) == 3  # 503: transient, retried twice
    assert json_entry(wm, "m")["source"].endswith("/good.bin")


def test_corrupt_mirror_falls_back_to_next(server, tmp_path):
    server.files["/corrupt.bin"] = OTHER
    server.files["/good.bin"] = PAYLOAD
    wm = make_manager(tmp_path, wf("c", [server.url + "/corrupt.bin", server.url + "/good.bin"], size=None))
    wm.download("c")
    assert wm.path("c").read_bytes() == PAYLOAD


def json_entry(wm: WeightsManager, name: str) -> dict:
    return wm.checksums.get(name)


def test_unhashed_file_is_refused_unless_trust_on_first_use_is_accepted(server, tmp_path):
    server.files["/u.bin"] = PAYLOAD
    server.files["/h.bin"] = PAYLOAD
    wm = make_manager(tmp_path, wf("u", [server.url + "/u.bin"], sha=None, size=None), wf("h", [server.url + "/h.bin"]))
    with pytest.raises(WeightsUnverifiedError) as ei:
        wm.download("u")
    assert "--trust-unverified" in str(ei.value) and "no published SHA-256" in str(ei.value)
    assert server.gets("/u.bin") == [] and not wm.path("u").exists()  # nothing was fetched
    # a hashed file in the same call is still downloaded; only the unhashed one is reported
    with pytest.raises(WeightsMissingError, match="trust-unverified"):
        wm.download(["u", "h"])
    assert wm.path("h").read_bytes() == PAYLOAD
    out = io.StringIO()
    assert cmd_download(["u"], out, manager=wm, progress=False) == 1 and "--trust-unverified" in out.getvalue()
    assert wm.trust_unverified is False


def test_unhashed_file_records_sha_on_trusted_first_download_and_enforces_it(server, tmp_path):
    server.files["/u.bin"] = PAYLOAD
    wm = make_manager(tmp_path, wf("u", [server.url + "/u.bin"], sha=None, size=None))
    out = io.StringIO()
    assert cmd_download(["u"], out, manager=wm, progress=False, trust_unverified=True) == 0
    assert wm.trust_unverified is False  # the flag applies to that call only
    assert json_entry(wm, "u")["trusted_on_first_use"] is True
    assert json_entry(wm, "u")["sha256"] == PAYLOAD_SHA
    assert (tmp_path / "weights" / "checksums.json").is_file()
    # the file changes on disk: verify reports corrupt against the recorded hash
    wm.path("u").write_bytes(OTHER)
    (st,) = wm.verify("u")
    assert st.state == "corrupt" and PAYLOAD_SHA in st.detail
    # re-download: the server now serves other bytes -> refused against the recorded hash
    server.files["/u.bin"] = OTHER
    with pytest.raises(WeightsChecksumError):
        wm.download("u", force=True)


def test_offline_error_lists_files_paths_and_urls(tmp_path):
    dead = closed_port_url()
    files = [
        wf("x", [dead + "/x.bin", "hf://someone/repo@main/dir/x.bin"]),
        wf("y", [dead + "/y.bin"], size=None),
    ]
    wm = make_manager(tmp_path, *files)
    wm.hf_endpoint = dead  # the Hub is unreachable too
    with pytest.raises(WeightsMissingError) as ei:
        wm.download(["x", "y"])
    err = ei.value
    msg = str(err)
    assert str(wm.path("x")) in msg and str(wm.path("y")) in msg
    assert dead + "/x.bin" in msg and dead + "/y.bin" in msg
    assert f"{dead}/someone/repo/resolve/main/dir/x.bin" in msg  # hf:// shown as a fetchable URL
    assert PAYLOAD_SHA in msg and str(len(PAYLOAD)) in msg
    assert f"talkinghead weights download --cache-dir {wm.cache_dir} x y" in msg
    assert "cannot connect" in msg and "unreachable" in msg  # y's mirror skipped: host known dead
    assert err.files == [str(wm.path("x")), str(wm.path("y"))]
    assert not any(wm.path("x").parent.glob("*.part"))


def test_require_reports_missing_and_downloads_on_request(server, tmp_path):
    server.files["/r.bin"] = PAYLOAD
    wm = make_manager(tmp_path, wf("r", [server.url + "/r.bin"]))
    with pytest.raises(WeightsMissingError, match="talkinghead weights download --cache-dir .* r"):
        wm.require("r")
    paths = wm.require("r", download=True)
    assert paths["r"].read_bytes() == PAYLOAD
    n = len(server.log)
    assert wm.require("r") == paths and len(server.log) == n
    wm.path("r").write_bytes(OTHER)  # tampered: size differs -> corrupt
    with pytest.raises(WeightsChecksumError):
        wm.require("r")


def test_transient_cut_then_refused_is_reported_after_retries(server, tmp_path):
    server.files["/t.bin"] = PAYLOAD
    server.cut_once["/t.bin"] = 10
    part = tmp_path / "t.part"
    calls = []
    http_download(server.url + "/t.bin", part, expected_size=len(PAYLOAD), retries=1, sleep=calls.append, backoff=0.5)
    assert part.read_bytes() == PAYLOAD and calls == [0.5]


# ------------------------------------------------------------------------------ cache dirs


def test_cache_dir_default_env_and_argument(tmp_path, monkeypatch):
    monkeypatch.delenv("TALKINGHEAD_CACHE", raising=False)
    assert default_weights_dir().parts[-2:] == ("talkinghead", "weights")
    assert default_weights_dir({"TALKINGHEAD_CACHE": str(tmp_path)}) == tmp_path / "weights"
    monkeypatch.setenv("TALKINGHEAD_CACHE", str(tmp_path / "env"))
    before = dict(os.environ)
    f = wf("z", ["https://example.invalid/z.bin"])
    reg = WeightRegistry()
    reg.add(f)
    assert WeightsManager(registry=reg).path("z") == tmp_path / "env" / "weights" / "test" / "z.bin"
    assert WeightsManager(tmp_path / "arg", registry=reg).path("z") == tmp_path / "arg" / "test" / "z.bin"
    assert dict(os.environ) == before


# ------------------------------------------------------------------------------ registry


def test_registry_resolves_files_groups_bundles():
    reg = WeightRegistry()
    a, b, c = wf("a", ["https://x/a"]), wf("b", ["https://x/b"]), wf("c", ["https://x/c"], group="other")
    for f in (a, b, c):
        reg.add(f)
    reg.add_bundle(WeightBundle("ab", ("a", "b")))
    reg.add_bundle(WeightBundle("everything", ("ab", "other", "a")))
    assert reg.resolve("ab") == [a, b]
    assert reg.resolve("test") == [a, b]
    assert reg.resolve("everything") == [a, b, c]
    assert reg.resolve("all") == [a, b, c]
    with pytest.raises(ConfigError, match="nope"):
        reg.resolve("nope")
    # a conflicting redefinition is ignored, the first one wins
    reg.add(wf("a", ["https://evil/a"]))
    assert reg.get("a") is a


@pytest.mark.parametrize(
    "kwargs",
    [
        {"name": "bad name"},
        {"filename": "../escape.bin"},
        {"urls": ("ftp://x/a",)},
        {"urls": "https://x/a"},
        {"sha256": "abc"},
        {"size": -1},
    ],
)
def test_weightfile_validation(kwargs):
    base = dict(name="ok", filename="ok.bin", urls=("https://x/a",), sha256=None, size=None)
    base.update(kwargs)
    with pytest.raises(ConfigError):
        WeightFile(**base)


def test_builtin_catalogue_and_backend_weights_are_collected(monkeypatch):
    from talkinghead import plugins
    from talkinghead.weights import build_registry, catalog

    class Dummy:
        stage, name = "enhancer", "dummy-weights"
        weights = (WeightFile("dummy-net", "dummy.pt", ("https://x/dummy.pt",), group="dummy"),)

    backends = plugins.Registry()
    backends.register(Dummy, "test-plugin")
    monkeypatch.setattr(plugins, "get_registry", lambda: backends)
    reg = build_registry()
    assert "dummy-net" in reg and reg.resolve("enhancer:dummy-weights")[0].filename == "dummy.pt"
    st = reg.get("sadtalker-256")
    assert st.size == 725066984 and st.sha256.startswith("c211f5d6")
    assert st.urls[0].startswith("https://github.com/OpenTalker/SadTalker/releases/download/v0.0.2-rc/")
    assert parse_hf_url(st.urls[1]).repo_id == "vinthony/SadTalker-V002rc"
    assert {f.name for f in reg.resolve("sadtalker-full")} >= {"sadtalker-256", "retinaface-resnet50", "awing-wflw"}
    for f in catalog.FILES:  # every built-in file is pinned: nothing is trusted on first use
        assert f.sha256 is not None, f.name
    face = {f.name: (f.size, f.sha256[:8]) for f in catalog.FILES if f.group in ("retinaface", "parsenet", "awing", "gfpgan")}
    assert face == {
        "retinaface-mobilenet0.25": (1789735, "2979b33f"),
        "retinaface-resnet50": (109497761, "6d1de9c2"),
        "parsenet": (85331193, "3d558d8d"),
        "awing-wflw": (193670248, "bbfd1373"),
        "gfpgan-v1.4": (348632874, "e2cd4703"),
    }
    assert catalog.select("gfpgan-v1.4")[0].filename == "GFPGANv1.4.pth"
    assert reg.needed_by["dummy-net"] == ["enhancer:dummy-weights"]


def test_builtin_backends_declare_their_weights():
    """Each built-in backend that loads weights declares them; the registry knows who needs what."""
    from talkinghead.backends.gfpgan import GFPGANEnhancer
    from talkinghead.backends.sadtalker.backend import SadTalkerAnimator
    from talkinghead.weights import build_registry

    assert {f.name for f in GFPGANEnhancer.weights} >= {"gfpgan-v1.4", "retinaface-mobilenet0.25", "parsenet"}
    assert {f.name for f in SadTalkerAnimator.weights} >= {"sadtalker-256", "mapping-00229", "awing-wflw"}
    reg = build_registry()
    assert "enhancer:gfpgan" in reg.needed_by["retinaface-resnet50"]
    assert "animator:sadtalker" in reg.needed_by["retinaface-resnet50"]
    assert {f.name for f in reg.resolve("animator:sadtalker")} == {f.name for f in SadTalkerAnimator.weights}


def test_resolve_explicit_path_cache_and_one_error(server, tmp_path):
    server.files["/r.bin"] = PAYLOAD
    f = wf("r", [server.url + "/r.bin"])
    wm = make_manager(tmp_path, f)
    given = tmp_path / "mine.bin"
    given.write_bytes(b"anything")  # an explicit path is the user's choice: used as it is
    assert wm.resolve(f, given) == given
    with pytest.raises(WeightsMissingError) as ei:
        wm.resolve(f, tmp_path / "nope.bin")
    msg = str(ei.value)
    assert "talkinghead weights download r" in msg and str(tmp_path / "nope.bin") in msg
    assert server.url + "/r.bin" in msg and PAYLOAD_SHA in msg
    with pytest.raises(WeightsMissingError, match="talkinghead weights download --cache-dir .* r"):
        wm.resolve(f)
    assert wm.resolve(f, download=True) == wm.path(f)
    assert resolve(f, cache_dir=wm.cache_dir) == wm.path(f)  # the module-level shortcut


def test_parse_hf_url():
    r = parse_hf_url("hf://vinthony/SadTalker-V002rc@main/SadTalker_V0.0.2_256.safetensors")
    assert (r.repo_id, r.revision, r.repo_type) == ("vinthony/SadTalker-V002rc", "main", "model")
    assert r.path == "SadTalker_V0.0.2_256.safetensors"
    r = parse_hf_url("hf://spaces/vinthony/SadTalker/checkpoints/epoch_20.pth")
    assert (r.repo_type, r.revision, r.path) == ("space", "main", "checkpoints/epoch_20.pth")
    assert r.browser_url() == "https://huggingface.co/spaces/vinthony/SadTalker/resolve/main/checkpoints/epoch_20.pth"
    for bad in ("hf://onlyname/file", "hf://a/b@rev", "hf://a/b/../x"):
        with pytest.raises(ConfigError):
            parse_hf_url(bad)


# ------------------------------------------------------------------------------ Hugging Face


def test_hf_url_downloads_through_huggingface_hub_with_explicit_endpoint(server, tmp_path, monkeypatch):
    pytest.importorskip("huggingface_hub")
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    server.files["/hf/org/repo/sub/h.bin"] = PAYLOAD
    f = wf("h", ["hf://org/repo@main/sub/h.bin"])
    wm = make_manager(tmp_path, f)
    wm.hf_endpoint = server.url
    seen = []
    before = dict(os.environ)
    wm.download("h", progress=lambda f, d, t: seen.append(d))
    assert dict(os.environ) == before
    assert wm.path("h").read_bytes() == PAYLOAD
    assert seen and seen[-1] == len(PAYLOAD)
    methods = [e["method"] for e in server.log if e["path"] == "/hf/org/repo/sub/h.bin"]
    assert "HEAD" in methods and "GET" in methods  # huggingface_hub's metadata request, then the file
    assert not (tmp_path / "weights" / ".hf" / "test").exists()  # staging cleaned up


# ------------------------------------------------------------------------------ CLI functions


def test_cli_functions(server, tmp_path):
    server.files["/a.bin"] = PAYLOAD
    wm = make_manager(tmp_path, wf("a", [server.url + "/a.bin"]), wf("b", [closed_port_url() + "/b.bin"]))
    out = io.StringIO()
    assert cmd_list(out, manager=wm) == 0
    assert re.search(r"a\s+0\.3 MB\s+missing\s+MIT", out.getvalue())
    out = io.StringIO()
    assert cmd_path(["a"], out, manager=wm) == 0 and out.getvalue().strip() == str(wm.path("a"))
    assert cmd_path([], io.StringIO(), manager=wm) == 0
    assert cmd_path(["nope"], io.StringIO(), manager=wm) == 2
    out = io.StringIO()
    assert cmd_download(["a"], out, manager=wm) == 0
    assert "downloading a" in out.getvalue() and "ok  a" in out.getvalue()
    out = io.StringIO()
    assert cmd_download(["b"], out, manager=wm) == 1 and str(wm.path("b")) in out.getvalue()
    out = io.StringIO()
    assert cmd_verify(["a"], out, manager=wm) == 0 and out.getvalue().startswith("ok")
    assert cmd_verify(["b"], io.StringIO(), manager=wm) == 1
    assert cmd_verify([], io.StringIO(), manager=wm) == 0  # missing files alone are no failure
    wm.path("a").write_bytes(PAYLOAD[::-1])
    out = io.StringIO()
    assert cmd_verify([], out, manager=wm) == 1 and "corrupt" in out.getvalue()
    out = io.StringIO()
    cmd_list(out, manager=wm)
    assert re.search(r"a\s+0\.3 MB\s+present", out.getvalue())
    assert f"sha256 {PAYLOAD_SHA}" in out.getvalue() and "needed by -" in out.getvalue()
