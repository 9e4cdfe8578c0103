import io

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from talkinghead import io as thio
from talkinghead.errors import AudioError, ImageError
from talkinghead.io import check_speech, load_audio, load_image


def png_bytes(arr, mode=None):
    buf = io.BytesIO()
    Image.fromarray(arr, mode=mode).save(buf, format="PNG")
    return buf.getvalue()


def put(path, data):
    path.write_bytes(data)
    return path


def test_load_image_variants(tmp_path, portrait_path):
    p = load_image(portrait_path)
    assert p.image.shape == (512, 512, 3) and p.source == str(portrait_path)
    rgba = np.zeros((10, 12, 4), np.uint8)
    rgba[..., 3] = 0
    assert (load_image(png_bytes(rgba)).image == 255).all()  # transparent -> white
    grey = np.full((8, 8), 77, np.uint8)
    assert load_image(png_bytes(grey)).image.shape == (8, 8, 3)
    assert load_image(np.zeros((4, 4, 3), np.float32)).image.dtype == np.uint8
    assert load_image(p) is p


def test_exif_orientation_is_applied():
    arr = np.zeros((20, 40, 3), np.uint8)
    im = Image.fromarray(arr)
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90 CW on display
    buf = io.BytesIO()
    im.save(buf, format="JPEG", exif=exif)
    assert load_image(buf.getvalue()).image.shape[:2] == (40, 20)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda d: d / "missing.png", "not found"),
        (lambda d: d, "directory"),
        (lambda d: put(d / "e.png", b""), "empty"),
        (lambda d: put(d / "t.png", b"hello"), "not an image"),
        (lambda d: put(d / "c.png", png_bytes(np.zeros((64, 64, 3), np.uint8))[:60]), "corrupt"),
    ],
)
def test_bad_images(tmp_path, make, match):
    with pytest.raises(ImageError, match=match):
        load_image(make(tmp_path))


def test_huge_image(monkeypatch):
    monkeypatch.setattr(thio, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(ImageError, match="megapixel|pixel limit"):
        load_image(png_bytes(np.zeros((20, 20, 3), np.uint8)))


def wav_bytes(data, rate, subtype="PCM_16"):
    buf = io.BytesIO()
    sf.write(buf, data, rate, format="WAV", subtype=subtype)
    return buf.getvalue()


def test_load_audio_stereo_pcm_and_resample():
    t = np.arange(8000) / 8000
    stereo = np.stack([np.sin(2 * np.pi * 200 * t), np.sin(2 * np.pi * 200 * t)], axis=1) * 0.5
    a = load_audio(wav_bytes(stereo, 8000))
    assert a.sample_rate == 8000 and a.samples.ndim == 1
    assert abs(a.samples.max() - 0.5) < 0.01
    b = load_audio(wav_bytes(stereo, 8000), sample_rate=16000)
    assert b.sample_rate == 16000 and abs(len(b.samples) - 16000) <= 1


def test_load_audio_mp3_via_pyav(tmp_path):
    av = pytest.importorskip("av")
    path = tmp_path / "a.mp3"
    with av.open(str(path), "w") as out:
        s = out.add_stream("mp3", rate=16000)
        s.layout = "mono"
        t = np.arange(16000) / 16000
        samples = (0.3 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)
        frame = av.AudioFrame.from_ndarray(samples[None], format="fltp", layout="mono")
        frame.sample_rate = 16000
        for p in s.encode(frame):
            out.mux(p)
        for p in s.encode():
            out.mux(p)
    a = load_audio(path)
    assert 0.9 < a.duration < 1.2 and np.abs(a.samples).max() > 0.1


@pytest.mark.parametrize(
    "value, match",
    [
        (b"", "empty"),
        (b"\x00\x01garbage" * 100, "readable|not WAV"),
        (np.zeros(10), "sample rate"),
        ((np.zeros(0), 16000), "empty"),
        ((np.array([0.0, np.nan]), 16000), "NaN"),
        ((np.ones(100) * 0.1, 4000), "too low for speech"),
    ],
)
def test_bad_audio(value, match):
    with pytest.raises(AudioError, match=match):
        load_audio(value)


def test_missing_audio_file(tmp_path):
    with pytest.raises(AudioError, match="not found"):
        load_audio(tmp_path / "nope.wav")


def test_check_speech():
    check_speech(load_audio((np.full(100, 0.1), 16000)))
    with pytest.raises(AudioError, match="silent"):
        check_speech(load_audio((np.full(100, 1e-5), 16000)))


# -- high bit depth and the host's decompression-bomb guard (issue 8 §6) ---------------------------
def test_16bit_greyscale_png_scales_not_clips(tmp_path):
    from PIL import Image

    ramp = (np.linspace(0, 65535, 64 * 48).reshape(48, 64)).astype(np.uint16)
    path = tmp_path / "grey16.png"
    Image.fromarray(ramp).save(path)
    assert Image.open(path).mode.startswith("I")  # PIL reads it as a high-bit-depth mode
    img = load_image(path).image
    assert img.dtype == np.uint8 and img.shape == (48, 64, 3)
    expect = np.rint(ramp / 257.0)
    np.testing.assert_allclose(img[:, :, 0], expect, atol=1)
    assert (img == 255).mean() < 0.01  # before: values over 255 were clipped, ~99 % white
    np.testing.assert_array_equal(img[:, :, 0], img[:, :, 2])


def test_high_bit_depth_arrays_and_modes():
    from PIL import Image

    a16 = np.full((8, 8), 32896, np.uint16)  # mid-grey in 16 bits
    assert load_image(a16).image[0, 0, 0] == 128
    rgb16 = np.full((8, 8, 3), 65535, np.uint16)
    assert load_image(rgb16).image.max() == 255 and load_image(rgb16).image.min() == 255
    f = np.full((8, 8), 0.5, np.float32)
    assert load_image(Image.fromarray(f, mode="F")).image[0, 0, 0] == 128
    i32 = Image.fromarray(np.full((8, 8), 65535, np.int32), mode="I")
    assert load_image(i32).image[0, 0, 0] == 255
    wide8 = np.full((8, 8, 3), 200, np.int64)  # 8-bit data in a wide type stays as it is
    assert load_image(wide8).image[0, 0, 0] == 200


def test_loading_leaves_the_hosts_pil_guard_alone(tmp_path, monkeypatch):
    from PIL import Image

    from talkinghead.errors import ImageError

    path = tmp_path / "p.png"
    Image.fromarray(np.zeros((40, 50, 3), np.uint8)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 12345)
    load_image(path)
    assert Image.MAX_IMAGE_PIXELS == 12345  # before: set to None on every load, for the whole process
    # a host limit lower than ours is the host's choice: its bomb error becomes our ImageError
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500)
    with pytest.raises(ImageError, match="too large"):
        load_image(path)


def test_our_pixel_limit_is_checked_from_the_header(tmp_path, monkeypatch):
    from PIL import Image

    from talkinghead import io as tio
    from talkinghead.errors import ImageError

    path = tmp_path / "big.png"
    Image.fromarray(np.zeros((300, 400, 3), np.uint8)).save(path)
    monkeypatch.setattr(tio, "MAX_IMAGE_PIXELS", 100_000)
    from PIL import ImageFile

    decoded = []
    real_load = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: decoded.append(1) or real_load(self))
    with pytest.raises(ImageError, match="megapixel limit"):
        load_image(path)
    assert not decoded  # refused before decoding a single pixel
