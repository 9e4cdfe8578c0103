"""Shared fixtures of the framework adapter tests.

These tests run in their own environment (``.venv-agents``, made by ``make test``): LiveKit Agents and
Pipecat need protobuf >= 5, which mediapipe 0.10.21 in the main environment cannot load, so the
avatar's face landmarks come from the LiteRT provider there (``docs/integrations.md``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from talkinghead import Avatar, ModelCache
from talkinghead.testing import tone_speech
from talkinghead.values import Audio

ROOT = Path(__file__).resolve().parents[2]
PORTRAIT = ROOT / "assets" / "portrait_astronaut.png"


@pytest.fixture(scope="session")
def model_cache() -> ModelCache:
    """One model cache for every test: models load once per worker, as in production."""
    return ModelCache()


@pytest.fixture
def avatar(model_cache: ModelCache) -> Avatar:
    """The offline default: the viseme animator on the test portrait (256 px to keep tests quick)."""
    return Avatar(PORTRAIT, tts=None, writer=None, animator="viseme", max_size=256, cache=model_cache)


@pytest.fixture(scope="session")
def speech() -> Audio:
    """About 1.6 s of speech-like tones at 48 kHz (what WebRTC stacks use)."""
    return tone_speech(["hel", "lo", "there", "friend"], sample_rate=16000).resample(48000)
