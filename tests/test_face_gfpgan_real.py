"""Opt-in: the gfpgan enhancer with the real GFPGAN v1.4 and RetinaFace weights.

Runs only with TALKINGHEAD_REAL_WEIGHTS=1 and the files in the weights cache
(`talkinghead weights download gfpgan-v1.4 retinaface-mobilenet0.25`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.real_weights, pytest.mark.slow]

if os.environ.get("TALKINGHEAD_REAL_WEIGHTS") != "1":
    pytest.skip("real-weight test: set TALKINGHEAD_REAL_WEIGHTS=1 (and download the weights)", allow_module_level=True)

torch = pytest.importorskip("torch")
cv2 = pytest.importorskip("cv2")

from talkinghead.backends.gfpgan import GFPGANEnhancer  # noqa: E402
from talkinghead.errors import WeightsMissingError  # noqa: E402
from talkinghead.values import FrameChunk  # noqa: E402

ASSET = Path(__file__).parents[1] / "assets" / "portrait_astronaut.png"


def _enhancer(**cfg) -> GFPGANEnhancer:
    enh = GFPGANEnhancer(**cfg)
    try:
        enh.load()
    except WeightsMissingError as exc:
        pytest.skip(f"weights not in the cache: {exc}")
    return enh


@pytest.fixture(scope="module")
def frames():
    img = cv2.cvtColor(cv2.imread(str(ASSET)), cv2.COLOR_BGR2RGB)
    img = cv2.resize(img, (512, 512), interpolation=cv2.INTER_AREA)
    small = cv2.resize(img, (128, 128), interpolation=cv2.INTER_AREA)
    degraded = cv2.resize(small, (512, 512), interpolation=cv2.INTER_LINEAR)  # blurry input to restore
    return np.stack([degraded, degraded])


def test_real_restoration_is_deterministic_and_changes_the_face(frames):
    enh = _enhancer()
    out = enh.enhance(FrameChunk(frames.copy()))
    assert enh.faces_restored == 2 and enh.frames_without_face == 0
    assert np.array_equal(out.frames[0], out.frames[1])  # stored noise: no flicker
    diff = np.abs(out.frames[0].astype(np.int16) - frames[0]).mean()
    assert diff > 1.0
    # restoration adds detail: more high-frequency energy than the blurry input
    lap_in = cv2.Laplacian(cv2.cvtColor(frames[0], cv2.COLOR_RGB2GRAY), cv2.CV_64F).var()
    lap_out = cv2.Laplacian(cv2.cvtColor(out.frames[0], cv2.COLOR_RGB2GRAY), cv2.CV_64F).var()
    assert lap_out > lap_in


def test_real_variants_agree_roughly(frames):
    full = _enhancer().enhance(FrameChunk(frames[:1].copy())).frames[0].astype(np.float64)
    for variant in ("align256", "decoder256"):
        other = _enhancer(restore_size=variant).enhance(FrameChunk(frames[:1].copy())).frames[0]
        mse = np.mean((full - other) ** 2)
        psnr = 10 * np.log10(255**2 / max(mse, 1e-9))
        assert psnr > 22, f"{variant}: PSNR {psnr:.1f} dB vs full512"
