"""Property tests (hypothesis): the image, audio and text loaders given random bytes, arrays and
strings either succeed or raise their documented error type — never another exception, and never
leave a file behind. Bounded (``max_examples``, ``deadline``, no example database) to run in seconds;
``TH_FUZZ_EXAMPLES=2000`` runs a longer hunt.
"""

from __future__ import annotations

import io
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

from talkinghead.errors import AudioError, ImageError, TextError  # noqa: E402
from talkinghead.io import load_audio, load_image  # noqa: E402
from talkinghead.text import (  # noqa: E402
    SentenceBuffer,
    check_scripts,
    clean_for_speech,
    cut_at_sentence,
    detect_scripts,
    language_scripts,
    speakable_text,
    split_sentences,
)
from talkinghead.values import Audio, Portrait  # noqa: E402

FUZZ = settings(
    max_examples=int(os.environ.get("TH_FUZZ_EXAMPLES", "120")),
    deadline=5000,  # ms per example: generous for a loaded 2-core machine
    database=None,  # no .hypothesis folder is written
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

IMAGE_MAGIC = [b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*", b"RIFF\x00\x00\x00\x00WEBP"]
AUDIO_MAGIC = [b"RIFF\x24\x00\x00\x00WAVEfmt ", b"fLaC", b"OggS", b"ID3\x03", b"\xff\xfb", b"\x00\x00\x00\x18ftypM4A ", b"FORM\x00\x00\x00\x00AIFF"]


@contextmanager
def no_files_left():
    """Run in an empty working and temporary folder; fail if anything is left in either."""
    with tempfile.TemporaryDirectory() as root:
        cwd, tmp = Path(root, "cwd"), Path(root, "tmp")
        cwd.mkdir()
        tmp.mkdir()
        old_cwd, old_tmp = os.getcwd(), tempfile.tempdir
        os.chdir(cwd)
        tempfile.tempdir = str(tmp)
        try:
            yield cwd
        finally:
            os.chdir(old_cwd)
            tempfile.tempdir = old_tmp
        left = sorted(p.name for p in cwd.iterdir() if p.name != "input") + sorted(p.name for p in tmp.iterdir())
        assert left == [], f"files left behind: {left}"


def load_bytes(loader, documented: type[Exception], data: bytes, as_path: bool):
    """``loader`` on ``data`` (or on a file holding it): its result, or None for a documented error."""
    with no_files_left() as cwd:
        source = data
        if as_path:
            source = cwd / "input"
            source.write_bytes(data)
        try:
            return loader(source)
        except documented:
            return None


def _valid_png(data: bytes) -> bytes:
    from PIL import Image

    side = 1 + data[0] % 12 if data else 4
    arr = np.frombuffer((data * (side * side * 3 // max(len(data), 1) + 1))[: side * side * 3] or b"\0" * 3, np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr.reshape(side, side, 3)).save(buf, format="PNG")
    return buf.getvalue()


def _corrupt(data: bytes, positions: list[int]) -> bytes:
    b = bytearray(data)
    for p in positions:
        b[p % len(b)] ^= 0xFF
    return bytes(b)


image_bytes = st.one_of(
    st.binary(max_size=2048),
    st.builds(lambda m, tail: m + tail, st.sampled_from(IMAGE_MAGIC), st.binary(max_size=2048)),
    st.builds(lambda seed, pos: _corrupt(_valid_png(seed), pos), st.binary(min_size=1, max_size=64), st.lists(st.integers(0, 10_000), max_size=6)),
    st.builds(lambda seed, cut: _valid_png(seed)[:cut], st.binary(min_size=1, max_size=64), st.integers(0, 200)),
)


@pytest.mark.slow
@FUZZ
@given(image_bytes, st.booleans())
def test_image_loader_on_random_bytes(data, as_path):
    portrait = load_bytes(load_image, ImageError, data, as_path)
    if portrait is not None:
        assert isinstance(portrait, Portrait) and portrait.image.dtype == np.uint8 and portrait.image.ndim == 3


array_dtypes = st.sampled_from([np.uint8, np.uint16, np.int16, np.int32, np.int64, np.float16, np.float32, np.float64, np.bool_, np.complex64])


@pytest.mark.slow
@FUZZ
@given(hnp.arrays(array_dtypes, hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=9)))
def test_image_loader_on_random_arrays(arr):
    try:
        portrait = load_image(arr)
    except ImageError:
        return
    assert portrait.image.dtype == np.uint8 and portrait.image.ndim == 3 and portrait.image.shape[2] == 3


audio_bytes = st.one_of(
    st.binary(max_size=4096),
    st.builds(lambda m, tail: m + tail, st.sampled_from(AUDIO_MAGIC), st.binary(max_size=4096)),
)


def _wav(seed: bytes, cut: int, positions: list[int]) -> bytes:
    import soundfile as sf

    buf = io.BytesIO()
    samples = np.frombuffer(seed * 64, np.uint8).astype(np.float32) / 255 - 0.5
    sf.write(buf, samples, 8000 + 8000 * (seed[0] % 3), format="WAV", subtype="PCM_16")
    return _corrupt(buf.getvalue()[: cut or None], positions) if positions else buf.getvalue()[: cut or None]


@FUZZ
@given(
    st.one_of(
        audio_bytes,
        st.builds(_wav, st.binary(min_size=1, max_size=64), st.integers(0, 600), st.lists(st.integers(0, 5000), max_size=4)),
    ),
    st.booleans(),
)
def test_audio_loader_on_random_bytes(data, as_path):
    audio = load_bytes(load_audio, AudioError, data, as_path)
    if audio is not None:
        assert isinstance(audio, Audio) and audio.samples.ndim == 1 and np.isfinite(audio.samples).all()


@FUZZ
@given(
    hnp.arrays(array_dtypes, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=40)),
    st.one_of(st.integers(-10, 10_000_000_000), st.floats(allow_nan=True), st.text(max_size=5), st.none()),
)
def test_audio_loader_on_random_sample_arrays(arr, rate):
    try:
        audio = load_audio((arr, rate))
    except AudioError:
        return
    assert audio.samples.ndim == 1 and audio.samples.dtype == np.float32 and audio.sample_rate >= 8000


@FUZZ
@given(st.text(max_size=400), st.integers(1, 60))
def test_text_functions_on_random_unicode(text, max_chars):
    try:
        clean = speakable_text(text, require_words=True)
    except TextError:
        clean = None
    if clean is not None:
        assert clean and clean == clean.strip()
    pieces = split_sentences(text, max_chars)
    assert all(0 < len(p) <= max_chars for p in pieces)
    assert "".join("".join(pieces).split()) == "".join(text.split())  # nothing lost, nothing added
    buf = SentenceBuffer(max_chars)
    got = []
    for i in range(0, len(text), 7):
        got += buf.push(text[i : i + 7])
    got += buf.flush()
    assert all(len(p) <= max_chars for p in got)
    assert isinstance(clean_for_speech(text), str)
    assert len(cut_at_sentence(text, max_chars)) <= max_chars + 1  # + the ellipsis
    assert all(n > 0 for n in detect_scripts(text).values())
    try:
        check_scripts(text, language_scripts("en"))
    except TextError:
        pass


@FUZZ
@given(st.text(max_size=300))
def test_avatar_text_check_on_random_unicode(text):
    from talkinghead.text import check_text

    try:
        out = check_text(text)
    except TextError:
        return
    assert out and len(out) <= 5000
