"""SadTalker animator backend: configuration, light import, weights discovery, loader errors."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from talkinghead.backends.sadtalker import checkpoint
from talkinghead.backends.sadtalker.backend import SadTalkerAnimator
from talkinghead.errors import ConfigError, ModelLoadError, WeightsMissingError


def test_module_import_is_light():
    code = ("import sys; import talkinghead.backends.sadtalker.backend as b; "
            "print(any(m in sys.modules for m in ('torch', 'cv2', 'mediapipe')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("cfg", [dict(pose_style=46), dict(pose_style=-1), dict(size=384),
                                 dict(preprocess="zoom"), dict(paste_mode="poisson"), dict(batch_size=0),
                                 dict(yaw=[])])
def test_bad_config(cfg):
    with pytest.raises(ConfigError):
        SadTalkerAnimator(**cfg)


def test_registered():
    from talkinghead.backends import BUILTIN_BACKENDS

    assert "sadtalker.backend:SadTalkerAnimator" in BUILTIN_BACKENDS


def test_weights_available_and_missing(tmp_path):
    assert SadTalkerAnimator.weights_available(tmp_path) is False
    (tmp_path / checkpoint.BUNDLE[256]).write_bytes(b"x")
    assert SadTalkerAnimator.weights_available(tmp_path) is False  # mapping file still missing
    (tmp_path / checkpoint.MAPPING[70]).write_bytes(b"x")
    assert SadTalkerAnimator.weights_available(tmp_path) is True
    with pytest.raises(ModelLoadError, match="SadTalker_V0.0.2_256.safetensors"):
        SadTalkerAnimator(weights_dir=tmp_path).load()  # the 1-byte bundle is corrupt


def test_load_without_files_says_what_to_do(tmp_path):
    with pytest.raises(WeightsMissingError) as e:
        SadTalkerAnimator(weights_dir=tmp_path).load()
    assert "SadTalker_V0.0.2_256.safetensors" in str(e.value)
    assert "talkinghead weights download sadtalker" in str(e.value)


def test_default_weights_dir_is_user_cache():
    d = checkpoint.default_weights_dir()
    assert d.name == "sadtalker" and "talkinghead" in str(d)


def test_fast_paste_blends_inside_box_only():
    from talkinghead.backends.sadtalker.paste import Paster

    full = np.full((100, 80, 3), 10, np.uint8)
    p = Paster(full, (20, 30, 60, 70), "fast")
    out = p.paste(np.full((2, 16, 16, 3), 250, np.uint8))
    assert out.shape == (2, 100, 80, 3)
    assert (out[:, :30] == 10).all() and (out[:, 70:] == 10).all() and (out[:, :, :20] == 10).all()
    assert out[0, 50, 40, 0] == 250  # centre fully replaced
    assert 10 < out[0, 30, 40, 0] < 250 or out[0, 31, 40, 0] < 250  # feathered edge
