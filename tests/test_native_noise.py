"""mediapipe / TFLite / absl lines never reach the terminal (issue 8 §10).

Before: every CLI run printed 4-5 native lines ("Created TensorFlow Lite XNNPACK delegate", "All log
messages before absl::InitializeLog()", "Feedback manager requires a model...", "Using NORM_RECT
without IMAGE_DIMENSIONS..."), one of them after the error line. They are captured at the source
(only while our native calls run) and logged at DEBUG; anything else written meanwhile passes through.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import talkinghead
from talkinghead.face.quiet import is_native_noise, native_output

ROOT = Path(__file__).resolve().parents[1]
NOISE = ("TensorFlow Lite", "absl::InitializeLog", "W0000", "I0000", "E0000", "Feedback manager", "NORM_RECT")


def test_noise_patterns():
    assert is_native_noise(b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n")
    assert is_native_noise(b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR")
    assert is_native_noise(b"W0000 00:00:1796142879.158039   13114 inference_feedback_manager.cc:114] Feedback ...")
    assert not is_native_noise(b"error: no face was found in the portrait")
    assert not is_native_noise(b"Traceback (most recent call last):")
    assert is_native_noise(b"[libprotobuf ERROR external/com_google_protobuf/src/google/protobuf/text_format.cc:335] x")


def test_capture_routes_noise_and_keeps_the_rest(capfd, caplog):
    import logging

    with caplog.at_level(logging.DEBUG, logger="talkinghead.face"):
        with native_output():
            os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n")
            os.write(2, b"something the host wrote meanwhile\n")
            with native_output():  # nested (another thread) shares the capture
                os.write(2, b"W0000 00:00:1.0   1 landmark_projection_calculator.cc:186] Using NORM_RECT\n")
    err = capfd.readouterr().err
    assert "something the host wrote meanwhile" in err
    assert "TensorFlow Lite" not in err and "NORM_RECT" not in err
    assert "XNNPACK" in caplog.text and "NORM_RECT" in caplog.text
    os.write(2, b"after\n")  # descriptor 2 is restored
    assert capfd.readouterr().err == "after\n"


def _cli(args, tmp_path):
    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(talkinghead.__file__).resolve().parents[1]) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "talkinghead.cli", *args], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=300)


@pytest.mark.slow
def test_cli_runs_print_no_native_lines(tmp_path):
    pytest.importorskip("mediapipe")
    pytest.importorskip("piper")
    pytest.importorskip("av")
    from PIL import Image

    ok = _cli(["say", "--image", str(ROOT / "assets" / "portrait_astronaut.png"), "--text", "Hi there.",
               "-o", str(tmp_path / "out.mp4")], tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert not [line for line in ok.stderr.splitlines() if any(n in line for n in NOISE)], ok.stderr
    assert (tmp_path / "out.mp4").is_file()

    Image.fromarray(np.full((200, 200, 3), 120, np.uint8)).save(tmp_path / "blank.png")
    bad = _cli(["say", "--image", str(tmp_path / "blank.png"), "--text", "Hi there.", "-o",
                str(tmp_path / "bad.mp4")], tmp_path)
    assert bad.returncode != 0
    lines = [line for line in bad.stderr.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("error: no face was found"), bad.stderr
    assert not [line for line in lines if any(n in line for n in NOISE)], bad.stderr
