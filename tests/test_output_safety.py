"""Outputs that can never destroy inputs: the path check, writer suffixes, atomic replacement,
stale temporary files, and SIGTERM/SIGKILL on real CLI processes (issue 8 §2, §3)."""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import talkinghead
from talkinghead import Avatar, ModelCache
from talkinghead.cli import main
from talkinghead.errors import OutputError
from talkinghead.output import atomic_file, check_output_path, clean_stale_temp_files, temp_name, writer_suffixes
from talkinghead.testing import FakeAnimator, FakeTTS, MemoryWriter, tone_speech


def run(*argv):
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def portrait_copy(portrait_path, tmp_path):
    dst = tmp_path / "me.png"
    shutil.copy(portrait_path, dst)
    return dst


def _digest(path: Path) -> bytes:
    return path.read_bytes()


# -- the path check --------------------------------------------------------------------------------
def test_output_that_resolves_to_an_input_is_refused(portrait_copy, tmp_path):
    wav = tmp_path / "voice.wav"
    import soundfile as sf

    sf.write(wav, tone_speech(["a", "b"]).samples, 16000)
    inputs = {"portrait": portrait_copy, "audio": wav}
    (tmp_path / "sub").mkdir()
    os.symlink(portrait_copy, tmp_path / "link.png")
    os.link(wav, tmp_path / "hard.wav")
    for target, what in [
        (portrait_copy, "portrait"),
        (wav, "audio"),
        (tmp_path / "sub" / ".." / "me.png", "portrait"),  # through ..
        (tmp_path / "link.png", "portrait"),  # through a symlink
        (tmp_path / "hard.wav", "audio"),  # a hard link of the input
    ]:
        with pytest.raises(OutputError, match=f"is the input {what}"):
            check_output_path(target, writer=None, inputs=inputs)


def test_devices_fifos_and_directories_are_refused(tmp_path):
    fifo = tmp_path / "pipe.mp4"
    os.mkfifo(fifo)
    with pytest.raises(OutputError, match="fifo"):
        check_output_path(fifo)
    with pytest.raises(OutputError, match="character device"):
        check_output_path("/dev/null")
    os.symlink("/dev/null", tmp_path / "null.mp4")
    with pytest.raises(OutputError, match="character device"):
        check_output_path(tmp_path / "null.mp4")
    with pytest.raises(OutputError, match="directory"):
        check_output_path(tmp_path)
    with pytest.raises(OutputError, match="does not exist"):
        check_output_path(tmp_path / "missing" / "a.mp4")


@pytest.mark.parametrize("name", ["x.avi", "x.webm", "x.gif", "x.txt", "x"])
def test_extensions_no_writer_produces_are_refused_with_the_supported_list(name, tmp_path):
    from talkinghead.backends.mp4 import Mp4Writer

    with pytest.raises(OutputError) as info:
        check_output_path(tmp_path / name, writer=Mp4Writer)
    message = str(info.value)
    assert ".mp4, .m4v, .mov, .mkv" in message
    assert not (tmp_path / name).exists()


def test_writers_declare_their_suffixes():
    from talkinghead.backends.mp4 import Mp4Writer

    assert writer_suffixes(Mp4Writer) == (".mp4", ".m4v", ".mov", ".mkv")
    assert writer_suffixes(MemoryWriter) == (".mp4",)  # only `suffix` declared


def test_another_installed_writer_is_named_for_its_suffix(fakes, tmp_path):
    from talkinghead.backends.mp4 import Mp4Writer
    from talkinghead.hookspecs import hookimpl
    from talkinghead.plugins import add_plugin

    class GifWriter(MemoryWriter):
        name = "gif"
        suffixes = (".gif",)

    class Plugin:
        @hookimpl
        def register_backends(self, register):
            register(GifWriter)

    add_plugin(Plugin(), name="gif-writer")
    with pytest.raises(OutputError, match="writer='gif'"):
        check_output_path(tmp_path / "x.gif", writer=Mp4Writer)


@pytest.mark.parametrize("suffix, container", [(".mkv", "matroska"), (".mov", "mov"), (".m4v", "mp4")])
def test_each_declared_suffix_gets_its_container(tmp_path, suffix, container):
    av = pytest.importorskip("av")
    from talkinghead.backends.mp4 import Mp4Writer
    from talkinghead.values import FrameChunk

    frames = [FrameChunk(np.zeros((4, 32, 32, 3), np.uint8), 0)]
    video = Mp4Writer().write(frames, tone_speech(["a"]), tmp_path / f"o{suffix}", fps=10)
    with av.open(str(video.path)) as c:
        assert container in c.format.name.split(",")
        assert c.streams.video[0].codec_context.name == "h264"


# -- through the Avatar and the CLI ------------------------------------------------------------------
def make(portrait, **kw):
    kw.setdefault("tts", FakeTTS())
    kw.setdefault("animator", FakeAnimator())
    kw.setdefault("writer", MemoryWriter())
    return Avatar(portrait, cache=ModelCache(), **kw)


def test_avatar_refuses_its_inputs_before_any_work(portrait_copy, tmp_path):
    import soundfile as sf

    wav = tmp_path / "voice.wav"
    sf.write(wav, tone_speech(["a", "b"]).samples, 16000)
    before_p, before_w = _digest(portrait_copy), _digest(wav)
    tts = FakeTTS()
    av = make(str(portrait_copy), tts=tts)
    with pytest.raises(OutputError, match="input portrait"):
        av.say("hello there", portrait_copy)
    assert tts.texts == []  # refused before synthesis
    with pytest.raises(OutputError, match="input audio"):
        av.speak(wav, wav)
    with pytest.raises(OutputError, match="input portrait"):
        av.speak(wav, tmp_path / "x" / ".." / "me.png")
    assert _digest(portrait_copy) == before_p and _digest(wav) == before_w


@pytest.mark.parametrize("which", ["image", "audio"])
def test_cli_output_equal_to_an_input_exits_1_and_keeps_the_input(fakes, portrait_copy, tmp_path, which):
    import soundfile as sf

    wav = tmp_path / "voice.wav"
    sf.write(wav, tone_speech(["a", "b"]).samples, 16000)
    target = portrait_copy if which == "image" else wav
    before = _digest(target)
    code, out, err = run(
        "speak", "-i", str(portrait_copy), "-a", str(wav), "-o", str(target), "--animator", "fake", "-q",
    )
    assert code == 1 and err.startswith("error:") and "destroy" in err
    assert _digest(target) == before


@pytest.mark.parametrize("name", ["x.avi", "x.webm", "x.gif", "x.txt", "noext"])
def test_cli_refuses_extensions_without_a_writer(fakes, portrait_path, tmp_path, name):
    code, _, err = run(
        "say", "-i", str(portrait_path), "-t", "hi there", "-o", str(tmp_path / name),
        "--tts", "fake", "--animator", "fake", "-q",
    )
    assert code == 1 and ".mp4" in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root: only root may replace /dev/full")
def test_cli_as_root_leaves_dev_full_a_device(fakes, portrait_path):
    import stat

    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full on this system")
    code, _, err = run(
        "say", "-i", str(portrait_path), "-t", "hi there", "-o", "/dev/full", "--tts", "fake", "--animator", "fake", "-q"
    )
    assert code == 1 and "character device" in err
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)
    assert not [n for n in os.listdir("/dev") if n.startswith(".full")]


def test_old_file_survives_a_failed_render(small_portrait, tmp_path):
    pytest.importorskip("av")

    class Broken(FakeAnimator):
        broken = True

        def animate(self, prepared, audio, *, fps, progress=None):
            it = super().animate(prepared, audio, fps=fps, progress=progress)
            yield next(it)
            if self.broken:
                raise RuntimeError("animator crashed")
            yield from it

    target = tmp_path / "out.mp4"
    target.write_bytes(b"the previous video")
    av = make(small_portrait, animator=Broken(chunk_size=2), writer="mp4")
    with pytest.raises(RuntimeError, match="crashed"):
        av.say("one two three four", target)
    assert target.read_bytes() == b"the previous video"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]
    av.animator.broken = False
    av.say("one two", target)  # and a good render replaces it
    assert target.read_bytes()[4:8] == b"ftyp"


# -- temporary files ------------------------------------------------------------------------------------
def test_temp_names_carry_the_pid_and_keep_the_suffix(tmp_path):
    name = temp_name(tmp_path / "talk.mp4")
    assert name.startswith(".talk.thpart-") and name.endswith(".mp4") and f"-{os.getpid()}-" in name


def test_atomic_file_removes_its_temp_on_any_exception(tmp_path):
    target = tmp_path / "a.mp4"
    target.write_bytes(b"old")
    for exc in (RuntimeError("x"), KeyboardInterrupt()):
        with pytest.raises(type(exc)):
            with atomic_file(target) as tmp:
                tmp.write_bytes(b"new, unfinished")
                raise exc
    assert target.read_bytes() == b"old" and sorted(tmp_path.iterdir()) == [target]


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(timeout=60)
    return proc.pid


def test_stale_temps_of_dead_processes_are_cleaned_on_the_next_write(tmp_path):
    dead = tmp_path / temp_name(tmp_path / "x.mp4").replace(f"-{os.getpid()}-", f"-{_dead_pid()}-")
    mine = tmp_path / temp_name(tmp_path / "y.mp4")
    other_host = tmp_path / ".z.thpart-00000000-1-0123abcd.mp4"
    unrelated = tmp_path / ".z-0123abcd.part.mp4"
    for p in (dead, mine, other_host, unrelated):
        p.write_bytes(b"partial")
    with atomic_file(tmp_path / "new.mp4") as tmp:
        tmp.write_bytes(b"video")
    names = {p.name for p in tmp_path.iterdir()}
    assert dead.name not in names
    assert {mine.name, other_host.name, unrelated.name, "new.mp4"} <= names
    assert clean_stale_temp_files(tmp_path) == []


# -- real processes, real signals --------------------------------------------------------------------
#: The CLI with the fake backends. It starts with Ctrl-C raising KeyboardInterrupt, as for a command typed
#: in a terminal: a process started with SIGINT ignored (a background job of a non-interactive shell,
#: ``nohup``, some CI runners) passes that on, and Python then leaves SIGINT ignored, as POSIX programs
#: should, so the render would finish and exit 0 whatever the test sends.
_CLI = (
    "import signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "import sys; from talkinghead.plugins import add_plugin; from talkinghead.testing import FakesPlugin; "
    "add_plugin(FakesPlugin(), name='fakes'); from talkinghead.cli import main; sys.exit(main(sys.argv[1:]))"
)


def _slow_render(portrait: Path, out: Path) -> subprocess.Popen:
    env = dict(os.environ)
    src = str(Path(talkinghead.__file__).resolve().parents[1])
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.Popen(
        [sys.executable, "-c", _CLI, "say", "-i", str(portrait), "-t", " ".join(["word"] * 40), "-o", str(out),
         "--tts", "fake", "--animator", "fake", "--set", "animator.delay=0.2", "--set", "animator.chunk_size=1",
         "--fps", "10", "-q"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )


def _wait_for_temp(folder: Path, proc: subprocess.Popen, timeout: float = 120.0) -> Path:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        temps = [p for p in folder.iterdir() if ".thpart-" in p.name]
        if temps:
            return temps[0]
        if proc.poll() is not None:
            pytest.fail(f"the render ended early: {proc.returncode} {proc.communicate()}")
        time.sleep(0.05)
    proc.kill()
    pytest.fail("the render never started writing")


@pytest.mark.slow
@pytest.mark.parametrize("sig, code, words", [(signal.SIGTERM, 143, "SIGTERM"), (signal.SIGINT, 130, "interrupted")])
def test_sigterm_behaves_like_sigint(portrait_path, tmp_path, sig, code, words):
    pytest.importorskip("av")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    target = out_dir / "talk.mp4"
    target.write_bytes(b"the previous video")
    proc = _slow_render(portrait_path, target)
    _wait_for_temp(out_dir, proc)
    proc.send_signal(sig)
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"the process did not stop on {sig!r}")
    assert proc.returncode == code, err
    assert words in err and "Traceback" not in err
    assert sorted(p.name for p in out_dir.iterdir()) == ["talk.mp4"]  # temp removed
    assert target.read_bytes() == b"the previous video"


@pytest.mark.slow
def test_sigkill_leftovers_are_cleaned_by_the_next_write(portrait_path, tmp_path):
    pytest.importorskip("av")
    from talkinghead.backends.mp4 import Mp4Writer
    from talkinghead.values import FrameChunk

    proc = _slow_render(portrait_path, tmp_path / "talk.mp4")
    leftover = _wait_for_temp(tmp_path, proc)
    proc.kill()
    proc.communicate(timeout=60)
    assert leftover.exists()  # SIGKILL cannot be caught: the file stays ...
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live_temp = tmp_path / leftover.name.replace(f"-{proc.pid}-", f"-{live.pid}-")
        live_temp.write_bytes(b"a live render")
        Mp4Writer().write([FrameChunk(np.zeros((2, 16, 16, 3), np.uint8))], None, tmp_path / "next.mp4", fps=10)
        assert not leftover.exists()  # ... until the next write to that folder
        assert live_temp.exists()  # a live process's file is left alone
    finally:
        live.kill()
        live.wait(timeout=60)
