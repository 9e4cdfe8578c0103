"""Hostile uploads: wrong magic, huge dimensions, bomb-like images, path-like names, oversize bodies,
long or lying audio — each refused with a typed JSON error before it is decoded."""

from __future__ import annotations

import io
import struct
import time
import zlib

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("av")

from fastapi.testclient import TestClient  # noqa: E402
from server_helpers import fake_settings, png_bytes, speech, wait_job, wav_bytes, webm_opus_bytes  # noqa: E402

from talkinghead.errors import AudioError, ImageError  # noqa: E402
from talkinghead.server import create_app  # noqa: E402
from talkinghead.server.errors import ApiError  # noqa: E402
from talkinghead.server.uploads import (  # noqa: E402
    check_image,
    decode_audio,
    probe_audio_seconds,
    sniff_audio,
    sniff_image,
)
from talkinghead.values import Audio  # noqa: E402


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_claiming(width: int, height: int, *, extra: bytes = b"", rows: int = 1) -> bytes:
    """A PNG whose header claims ``width``×``height`` while carrying almost no data (a bomb)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    raw = zlib.compress(b"\x00" + b"\x00" * 3 * min(width, 4096) * rows, 9)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + extra + png_chunk(b"IDAT", raw) + png_chunk(b"IEND", b"")


@pytest.fixture
def client(fakes, tmp_path):
    app = create_app(fake_settings(tmp_path, max_upload_bytes=2_000_000, max_image_pixels=4_000_000,
                                   max_audio_seconds=5.0))
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def error_of(r) -> str:
    body = r.json()
    assert set(body) >= {"error"} and set(body["error"]) == {"type", "message"}, body
    assert "Traceback" not in r.text
    return body["error"]["type"]


@pytest.mark.parametrize("endpoint", ["/v1/videos", "/v1/avatars"])
@pytest.mark.parametrize(
    "content, status, type_",
    [
        (b"this is not an image at all", 415, "UnsupportedMediaType"),
        (b"GIF89a" + b"\x00" * 100, 415, "UnsupportedMediaType"),
        (b"%PDF-1.7\n", 415, "UnsupportedMediaType"),
        (b"\x89PNG\r\n\x1a\n" + b"garbage" * 10, 422, "ImageError"),  # right magic, corrupt body
        (png_claiming(100_000, 100_000), 422, "ImageError"),  # 10 gigapixels claimed in ~100 bytes
        (png_claiming(6000, 6000, rows=50), 422, "ImageError"),  # 36 MP of zeros: compresses to almost nothing
        (b"", 422, "ImageError"),
    ],
)
def test_hostile_images_are_refused_before_decoding(client, endpoint, content, status, type_):
    data = {"text": "hello there"} if endpoint == "/v1/videos" else {}
    t0 = time.perf_counter()
    r = client.post(endpoint, files={"image": ("portrait.png", content, "image/png")}, data=data)
    assert r.status_code == status, r.text
    assert error_of(r) == type_
    assert time.perf_counter() - t0 < 10  # no decoding of billions of pixels happened
    assert client.get("/v1/videos").json()["data"] == [] and client.get("/v1/avatars").json()["data"] == []


def test_decompression_bomb_in_a_text_chunk(client):
    """A PNG with a small picture and a zTXt chunk that inflates to 20 MB (Pillow stops at 1 MB)."""
    bomb = zlib.compress(b"\x00" * 20_000_000, 9)
    ztxt = png_chunk(b"zTXt", b"Comment\x00\x00" + bomb)
    content = png_claiming(64, 64, extra=ztxt, rows=64)
    assert len(content) < 1_000_000
    r = client.post("/v1/videos", files={"image": ("p.png", content, "image/png")}, data={"text": "hello there"})
    assert r.status_code == 422, r.text  # Pillow's text-chunk limit stops inflating at 1 MB
    assert error_of(r) == "ImageError"


def test_animated_images_are_refused(client):
    from PIL import Image

    frames = [Image.new("RGB", (64, 64), (i * 40, 0, 0)) for i in range(3)]
    buf = io.BytesIO()
    frames[0].save(buf, format="WEBP", save_all=True, append_images=frames[1:])
    r = client.post("/v1/avatars", files={"image": ("a.webp", buf.getvalue(), "image/webp")})
    assert r.status_code == 422 and "animated" in r.json()["error"]["message"]


@pytest.mark.slow
def test_path_like_file_names_are_never_used(client, small_portrait, tmp_path):
    evil = tmp_path / "evil"
    names = ["../../../../" + str(evil / "x.png"), str(evil / "abs.png"), "..\\..\\win.png", "a/b/../../../c.mp4",
             "\x00null.png", "video.mp4"]
    for name in names:
        r = client.post("/v1/videos", files={"image": (name, png_bytes(small_portrait), "image/png")},
                        data={"text": "names do not matter"})
        assert r.status_code == 202, r.text
        assert wait_job(client, r.json()["id"])["status"] == "completed"
        r = client.post("/v1/avatars", files={"image": (name, png_bytes(small_portrait), "image/png")})
        assert r.status_code == 201, r.text
    assert not evil.exists()
    data = tmp_path / "data"
    written = {p.name for p in data.rglob("*") if p.is_file()}
    assert written <= {"record.json", "video.mp4", "captions.vtt", "portrait.png", "thumb.jpg"}, written
    # everything lives under the data folder, in folders named by server-made ids
    for p in data.rglob("*"):
        assert p.resolve().is_relative_to(data.resolve())


def test_oversize_body_with_content_length_is_refused_unread(client):
    big = b"\x89PNG\r\n\x1a\n" + b"\x00" * 3_000_000
    r = client.post("/v1/videos", files={"image": ("p.png", big, "image/png")}, data={"text": "hello there"})
    assert r.status_code == 413 and error_of(r) == "PayloadTooLarge"


def test_oversize_chunked_body_is_cut_off(client):
    def body():
        for _ in range(40):
            yield b"x" * 100_000

    r = client.post("/v1/videos", content=body(), headers={"Content-Type": "multipart/form-data; boundary=zz"})
    assert r.status_code == 413 and error_of(r) == "PayloadTooLarge"


def test_audio_uploads_are_checked(client, small_portrait):
    image = ("p.png", png_bytes(small_portrait), "image/png")

    def post(audio: bytes):
        return client.post("/v1/videos", files={"image": image, "audio": ("speech.wav", audio, "audio/wav")})

    assert post(png_bytes(small_portrait)).status_code == 415  # an image sent as audio
    assert post(b"RIFF\x00\x00\x00\x00WAVEjunk").status_code == 422
    long = Audio(np.zeros(16000 * 8, np.float32) + 0.1, 16000)  # 8 s > the 5 s limit
    r = post(wav_bytes(long))
    assert r.status_code == 422 and error_of(r) == "AudioError" and "limit" in r.json()["error"]["message"]
    r = post(webm_opus_bytes(Audio(np.full(48000 * 7, 0.1, np.float32), 48000)))
    assert r.status_code == 422 and "limit" in r.json()["error"]["message"]
    silent = Audio(np.zeros(16000, np.float32), 16000)
    r = post(wav_bytes(silent))
    assert r.status_code == 202  # silence is valid for speak: a video of the closed mouth (issue 8 §8)
    job = wait_job(client, r.json()["id"])
    assert job["status"] == "completed", job


# -- the checks on their own ------------------------------------------------------------------------
def test_sniffing_uses_content_not_names():
    assert sniff_image(b"\x89PNG\r\n\x1a\n....") == "png"
    assert sniff_image(b"\xff\xd8\xff\xe0") == "jpeg"
    assert sniff_image(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "webp"
    assert sniff_image(b"RIFF\x00\x00\x00\x00WAVEfmt ") is None
    assert sniff_audio(b"RIFF\x00\x00\x00\x00WAVEfmt ") == "wav"
    assert sniff_audio(b"OggS\x00") == "ogg" and sniff_audio(b"fLaC") == "flac"
    assert sniff_audio(b"\x1a\x45\xdf\xa3") == "webm" and sniff_audio(b"ID3\x04") == "mp3"
    assert sniff_audio(b"\x00\x00\x00\x20ftypM4A ") == "mp4"
    assert sniff_audio(b"<html>") is None


def test_check_image_reads_only_the_header():
    assert check_image(png_claiming(300, 200), max_pixels=100_000) == ("png", (300, 200))
    with pytest.raises(ImageError, match="megapixel"):
        check_image(png_claiming(3000, 2000), max_pixels=1_000_000)
    with pytest.raises(ApiError):
        check_image(b"BM" + b"\x00" * 50, max_pixels=10)


def test_probe_audio_duration_without_decoding():
    a = speech(5)
    assert abs(probe_audio_seconds(wav_bytes(a)) - a.duration) < 0.01
    assert abs(probe_audio_seconds(webm_opus_bytes(a)) - a.duration) < 0.05  # no duration in a WebM header
    decoded = decode_audio(webm_opus_bytes(a), max_seconds=10)
    assert abs(decoded.duration - a.duration) < 0.05
    with pytest.raises(AudioError, match="limit"):
        decode_audio(wav_bytes(a), max_seconds=a.duration / 2)
