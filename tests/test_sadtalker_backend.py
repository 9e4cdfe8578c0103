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
    from talkinghead.plugins import get_registry

    info = get_registry().get("animator", "sadtalker")
    assert info.cls is SadTalkerAnimator and info.plugin == "talkinghead"


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
    from talkinghead.face.paste import BoxPaster as Paster

    full = np.full((100, 80, 3), 10, np.uint8)
    p = Paster(full, (20, 30, 60, 70), "fast")
    out = p.paste(np.full((2, 16, 16, 3), 250, np.uint8))
    assert out.shape == (2, 100, 80, 3)
    assert (out[:, :30] == 10).all() and (out[:, 70:] == 10).all() and (out[:, :, :20] == 10).all()
    assert out[0, 50, 40, 0] == 250  # centre fully replaced
    assert 10 < out[0, 30, 40, 0] < 250 or out[0, 31, 40, 0] < 250  # feathered edge


def test_seamless_paste_small_image():
    pytest.importorskip("cv2")
    from talkinghead.face.paste import BoxPaster as Paster

    rng = np.random.RandomState(0)
    full = rng.randint(0, 255, (64, 72, 3)).astype(np.uint8)
    p = Paster(full, (16, 12, 48, 44), "seamless")
    out = p.paste(np.full((2, 16, 16, 3), 200, np.uint8))
    assert out.shape == (2, 64, 72, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[:, :8], np.broadcast_to(full[:8], (2, 8, 72, 3)))  # far outside untouched
    assert not np.array_equal(out[0, 20:36, 24:40], full[20:36, 24:40])


class _Landmarks:
    """A fake LandmarkSource: faces built from a template 68-point face scaled into boxes."""

    def __init__(self, boxes):
        self.boxes = boxes

    def detect(self, image):
        from talkinghead.values import Face

        # a plausible frontal layout in a unit box: eyes at y=.4, mouth corners at y=.75
        unit = np.zeros((68, 2), np.float32)
        unit[:, 0] = np.linspace(0.1, 0.9, 68)
        unit[:, 1] = 0.5
        unit[36:42] = (0.33, 0.4)
        unit[42:48] = (0.67, 0.4)
        unit[48], unit[54] = (0.38, 0.75), (0.62, 0.75)
        unit[30] = (0.5, 0.6)
        faces = []
        for x1, y1, x2, y2 in self.boxes:
            lm = unit * [x2 - x1, y2 - y1] + [x1, y1]
            faces.append(Face((x1, y1, x2, y2), 0.9, lm))
        return faces


@pytest.mark.parametrize("mode", ["crop", "extcrop", "resize", "full", "extfull"])
def test_crop_portrait_modes(mode):
    pytest.importorskip("cv2")
    from talkinghead.backends.sadtalker.preprocess import crop_portrait

    img = np.random.RandomState(1).randint(0, 255, (400, 300, 3)).astype(np.uint8)
    c = crop_portrait(img, mode=mode, size=64, landmarks=_Landmarks([(100, 120, 200, 220), (0, 0, 60, 60)]))
    assert c.image.shape == (64, 64, 3)
    assert c.face.box == (100, 120, 200, 220)  # the largest face
    x1, y1, x2, y2 = c.paste_box
    assert 0 <= x1 < x2 <= 300 and 0 <= y1 < y2 <= 400
    if mode == "resize":
        assert c.paste_box == (0, 0, 300, 400)
    else:
        assert x1 <= 150 <= x2 and y1 <= 170 <= y2  # the face centre is inside
    # the landmarks follow the crop: the eye centre maps to where the crop puts it
    eye = c.face.landmarks[36:48].mean(0)
    bw, bh = (x2 - x1), (y2 - y1)
    if mode in ("crop", "full", "resize"):
        expect = ((eye[0] - x1) * 64 / bw, (eye[1] - y1) * 64 / bh)
        np.testing.assert_allclose(c.lm68[36:48].mean(0), expect, atol=1.0)


def test_crop_portrait_face_policy():
    from talkinghead.backends.sadtalker.preprocess import crop_portrait
    from talkinghead.errors import FaceTooSmallError, MultipleFacesError, NoFaceError

    img = np.zeros((200, 200, 3), np.uint8)
    with pytest.raises(NoFaceError):
        crop_portrait(img, landmarks=_Landmarks([]))
    with pytest.raises(MultipleFacesError):
        crop_portrait(img, landmarks=_Landmarks([(0, 0, 80, 80), (100, 100, 190, 190)]), multiple_faces="refuse")
    with pytest.raises(FaceTooSmallError):
        crop_portrait(img, landmarks=_Landmarks([(10, 10, 30, 30)]))


def test_default_animator_follows_cached_weights(tmp_path, monkeypatch, caplog):
    import logging

    from talkinghead.avatar import _default_animator

    monkeypatch.setenv("TALKINGHEAD_CACHE", str(tmp_path))
    assert checkpoint.default_weights_dir() == tmp_path / "weights" / "sadtalker"
    with caplog.at_level(logging.INFO, logger="talkinghead"):
        assert _default_animator() == "viseme"
    assert "talkinghead weights download sadtalker" in caplog.text
    d = tmp_path / "weights" / "sadtalker"
    d.mkdir(parents=True)
    for name in checkpoint.required_files():
        (d / name).write_bytes(b"")  # presence is what the default choice checks
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="talkinghead"):
        assert _default_animator() == "sadtalker"
    assert "animator: sadtalker" in caplog.text


def test_missing_torch_names_the_extra(monkeypatch):
    import sys

    from talkinghead.backends.sadtalker.backend import SadTalkerAnimator
    from talkinghead.errors import MissingDependencyError

    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` raise ImportError
    with pytest.raises(MissingDependencyError, match=r"talkinghead\[sadtalker\]"):
        SadTalkerAnimator().load()
