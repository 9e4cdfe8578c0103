"""Opt-in: the bank animator and the ONNX graphs with the real SadTalker weights.

Runs only with ``TALKINGHEAD_REAL_WEIGHTS=1`` and the files cached (``talkinghead weights download
sadtalker``). Builds a 16-frame bank from 6 sentences (16 generator frames: minutes on a small CPU),
plays a held-out clip and compares it with SadTalker's own render of the same clip; exports the
parameter networks and the generator and checks them against torch.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from talkinghead.backends.sadtalker.backend import SadTalkerAnimator

PORTRAIT = Path(__file__).resolve().parent.parent / "assets" / "portrait_astronaut.png"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.real_weights,
    pytest.mark.skipif(os.environ.get("TALKINGHEAD_REAL_WEIGHTS") != "1",
                       reason="set TALKINGHEAD_REAL_WEIGHTS=1 to run the real-weights bank test"),
    pytest.mark.skipif(not SadTalkerAnimator.weights_available(),
                       reason="SadTalker weights not in the cache; run `talkinghead weights download sadtalker`"),
]


def test_real_bank_is_close_to_the_direct_render(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("mediapipe")
    from talkinghead.backends.bank import BankAnimator
    from talkinghead.eval.metrics import psnr
    from talkinghead.io import load_image
    from talkinghead.testing import tone_speech
    from talkinghead.values import Portrait

    portrait = Portrait(load_image(str(PORTRAIT)).image)
    bank = BankAnimator(source="sadtalker", source_config={"seed": 0}, k=16, sentences=6, bank_dir=tmp_path)
    prepared = bank.prepare(portrait)
    audio = tone_speech(["one", "two", "three", "four"], word_s=0.25, gap_s=0.08)
    banked = np.concatenate([c.frames for c in bank.animate(prepared, audio, fps=10)])
    st = bank.source
    direct = np.concatenate([c.frames for c in st.animate(st.prepare(portrait), audio, fps=10)])
    assert banked.shape == direct.shape
    score = float(np.mean([psnr(a, b) for a, b in zip(banked, direct)]))
    assert score > 24, score  # the same face, pose and mouth, within the bank's interpolation error
    # the mouth moves in the bank's output as in the direct render
    lm = st.prepare(portrait).landmarks
    x1, y1 = np.floor(lm[48:68].min(0)).astype(int) - 4
    x2, y2 = np.ceil(lm[48:68].max(0)).astype(int) + 4

    def motion(frames):
        return np.abs(np.diff(frames[:, max(y1, 0):y2, max(x1, 0):x2].astype(np.float32), axis=0)).mean(axis=(1, 2, 3))

    r = np.corrcoef(motion(banked), motion(direct))[0, 1]
    assert r > 0.5, r


def test_real_onnx_graphs_match_torch(tmp_path):
    pytest.importorskip("onnxruntime")
    from talkinghead.onnx.export import export_graphs
    from talkinghead.onnx.graphs import sadtalker_graphs

    nets = SadTalkerAnimator().networks()
    results = export_graphs(sadtalker_graphs(nets, batch=1), tmp_path)
    for r in results:
        limit = 2e-4 if r.name == "generator_render" else 1e-4  # see test_onnx.test_generator_render_matches_torch
        assert r.max_abs_diff <= limit, (r.name, r.max_abs_diff)
