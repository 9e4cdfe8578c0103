"""The adapters type-check against the frameworks' own type hints (both ship ``py.typed``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mypy", reason="needs mypy (installed in .venv-agents by make test)")
pytest.importorskip("livekit.agents", reason="needs talkinghead[livekit]")
pytest.importorskip("pipecat", reason="needs talkinghead[pipecat]")

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_adapters_pass_mypy_against_livekit_and_pipecat():
    cmd = [sys.executable, "-m", "mypy", "--ignore-missing-imports", "--follow-imports=silent", "--no-incremental",
           "src/talkinghead/integrations/"]
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success" in result.stdout
