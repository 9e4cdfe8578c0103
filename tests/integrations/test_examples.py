"""The examples of docs/integrations.md: the offline Pipecat one runs; the others compile and use real names."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pipecat", reason="needs talkinghead[pipecat]")
av = pytest.importorskip("av", reason="needs talkinghead[mp4]")
pytest.importorskip("piper", reason="needs talkinghead[piper] (the example's voice)")

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "integrations"


@pytest.mark.slow
def test_offline_pipecat_example_writes_idle_speech_idle(tmp_path):
    out = tmp_path / "answer.mp4"
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "pipecat_offline.py"), str(out), "Hello from a Pipecat pipeline."],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "speech frames for" in result.stdout
    with av.open(str(out)) as container:
        frames = sum(1 for _ in container.decode(video=0))
    with av.open(str(out)) as container:
        audio = np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(audio=0)])
    level = np.abs(audio[: len(audio) // 960 * 960]).reshape(-1, 960).max(axis=1)
    loud = np.flatnonzero(level > 0.01)
    assert frames >= 60 and loud.size > 20
    assert loud[0] >= 10 and loud[-1] <= len(level) - 10, "idle before and after the answer"


@pytest.mark.parametrize("name", ["livekit_agent.py", "livekit_remote_agent.py", "pipecat_bot.py"])
def test_server_examples_compile_and_use_real_names(name):
    """These need a LiveKit server or a browser; here they must at least compile and name real API."""
    import importlib

    tree = ast.parse((EXAMPLES / name).read_text(), name)
    compile(tree, name, "exec")
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("talkinghead"):
            module = importlib.import_module(node.module)
            for alias in node.names:
                assert hasattr(module, alias.name), f"{node.module}.{alias.name}"
