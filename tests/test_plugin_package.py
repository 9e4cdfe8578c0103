"""Build and install a real plug-in distribution, then render a video through its backend."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "talkinghead-pulse"


pytestmark = pytest.mark.slow  # pip-installs the example plug-in package (tens of seconds)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    pytest.importorskip("av")
    # build from a copy so the source tree gets no build/ or egg-info folders
    source = tmp_path_factory.mktemp("source") / "talkinghead-pulse"
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    wheel_dir = tmp_path_factory.mktemp("wheel")
    target = tmp_path_factory.mktemp("site")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", wheel_dir, source], check=True)
    (wheel,) = wheel_dir.glob("talkinghead_pulse-*.whl")
    subprocess.run([*pip, "install", "--no-deps", "--target", target, wheel], check=True)
    return target


def env_with(site: Path, **extra) -> dict:
    env = dict(os.environ)
    paths = [str(site), str(ROOT / "src"), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    env.pop("TALKINGHEAD_LOAD_PLUGINS", None)
    env.update(extra)
    return env


def cli(site, *args, **env):
    return subprocess.run(
        [sys.executable, "-m", "talkinghead.cli", *args], capture_output=True, text=True, env=env_with(site, **env)
    )


def test_plugin_is_listed_with_its_package(installed):
    result = cli(installed, "plugins")
    assert result.returncode == 0, result.stderr
    line = next(ln for ln in result.stdout.splitlines() if " pulse " in ln)
    assert line.startswith("animator") and "talkinghead-pulse" in line


def test_render_through_the_plugin_backend(installed, tmp_path, portrait_path):
    t = np.arange(16000) / 16000
    wav = tmp_path / "speech.wav"
    sf.write(wav, (0.3 * np.sin(2 * np.pi * 220 * t) * (t > 0.3)).astype(np.float32), 16000)
    out = tmp_path / "pulse.mp4"
    result = cli(installed, "speak", "-i", portrait_path, "-a", wav, "-o", out, "--animator", "pulse",
                 "--set", "animator.strength=0.1", "--fps", "10")
    assert result.returncode == 0, result.stderr
    import av

    with av.open(str(out)) as c:
        assert sum(1 for _ in c.decode(video=0)) == 10


def test_allow_list_can_exclude_the_plugin(installed):
    result = cli(installed, "plugins", TALKINGHEAD_LOAD_PLUGINS="someone-else")
    assert result.returncode == 0 and " pulse " not in result.stdout


def test_the_example_package_own_tests_pass(installed):
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(EXAMPLE / "tests")],
        capture_output=True, text=True, env=env_with(installed), cwd=EXAMPLE,
    )
    assert result.returncode == 0, result.stdout + result.stderr
