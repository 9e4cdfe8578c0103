from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
PORTRAIT = ROOT / "assets" / "portrait_astronaut.png"


@pytest.fixture(scope="session")
def portrait_path() -> Path:
    return PORTRAIT


@pytest.fixture
def fakes():
    """Register the fake backends (tts/asr/llm/animator/enhancer 'fake', writer 'memory')."""
    from talkinghead.plugins import add_plugin, reset
    from talkinghead.testing import FakesPlugin

    reset()
    add_plugin(FakesPlugin(), name="talkinghead-fakes")
    yield
    reset()


@pytest.fixture
def small_portrait() -> np.ndarray:
    rng = np.random.default_rng(0)
    img = np.full((160, 128, 3), 180, np.uint8)
    img += rng.integers(0, 20, img.shape, dtype=np.uint8)
    return img
