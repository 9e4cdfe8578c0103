"""Opt-in check of the real AWing + RetinaFace ResNet-50 weights on the test portrait.

Runs only with TALKINGHEAD_REAL_WEIGHTS=1 and the files in the weights cache
(`talkinghead weights download awing retinaface`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

if os.environ.get("TALKINGHEAD_REAL_WEIGHTS") != "1":
    pytest.skip("real-weight test: set TALKINGHEAD_REAL_WEIGHTS=1 (and download the weights)", allow_module_level=True)

torch = pytest.importorskip("torch")
cv2 = pytest.importorskip("cv2")

from talkinghead.errors import WeightsMissingError  # noqa: E402
from talkinghead.face.awing import AWingLandmarks  # noqa: E402

PORTRAIT = Path(__file__).resolve().parents[1] / "assets" / "portrait_astronaut.png"


def test_awing_agrees_with_mediapipe_on_eyes_and_mouth():
    from talkinghead.face.landmarks import Mesh68Landmarks as MediaPipeLandmarks

    rgb = cv2.cvtColor(cv2.imread(str(PORTRAIT)), cv2.COLOR_BGR2RGB)
    src = AWingLandmarks()
    try:
        faces = src.detect(rgb)
    except WeightsMissingError as exc:
        pytest.skip(str(exc))
    assert len(faces) == 1
    aw = faces[0].landmarks
    mp = MediaPipeLandmarks("mediapipe").detect(rgb)[0].landmarks
    x1, y1, x2, y2 = faces[0].box
    scale = max(x2 - x1, y2 - y1)
    idx = [36, 39, 42, 45, 48, 54, 30]  # eye corners, mouth corners, nose tip
    err = np.linalg.norm(aw[idx] - mp[idx], axis=1) / scale
    assert float(err.max()) < 0.08, err
