"""SyncNet: the architecture loads a checkpoint in the official format; the LSE computation; opt-in real weights.

The key manifest below is written from the upstream architecture (``SyncNetModel.S`` of
joonson/syncnet_python): every tensor of ``syncnet_v2.model`` with its shape. The test builds a
checkpoint from it with seeded values, saves it the way upstream does (``torch.save`` of the state
dict) and loads it with :func:`talkinghead.eval.syncnet.load_syncnet`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("python_speech_features")

from talkinghead.errors import ModelLoadError, WeightsMissingError  # noqa: E402
from talkinghead.eval.syncnet import (  # noqa: E402
    load_syncnet,
    mfcc_features,
    sync_offsets,
    syncnet_crops,
)

# (module, index, weight shape) for convolutions and linear layers; (module, index, channels) for BatchNorm
CONV = [
    ("netcnnaud", 0, (64, 1, 3, 3)),
    ("netcnnaud", 4, (192, 64, 3, 3)),
    ("netcnnaud", 8, (384, 192, 3, 3)),
    ("netcnnaud", 11, (256, 384, 3, 3)),
    ("netcnnaud", 14, (256, 256, 3, 3)),
    ("netcnnaud", 18, (512, 256, 5, 4)),
    ("netfcaud", 0, (512, 512)),
    ("netfcaud", 3, (1024, 512)),
    ("netcnnlip", 0, (96, 3, 5, 7, 7)),
    ("netcnnlip", 4, (256, 96, 1, 5, 5)),
    ("netcnnlip", 8, (256, 256, 1, 3, 3)),
    ("netcnnlip", 11, (256, 256, 1, 3, 3)),
    ("netcnnlip", 14, (256, 256, 1, 3, 3)),
    ("netcnnlip", 18, (512, 256, 1, 6, 6)),
    ("netfclip", 0, (512, 512)),
    ("netfclip", 3, (1024, 512)),
]
NORM = [
    ("netcnnaud", 1, 64),
    ("netcnnaud", 5, 192),
    ("netcnnaud", 9, 384),
    ("netcnnaud", 12, 256),
    ("netcnnaud", 15, 256),
    ("netcnnaud", 19, 512),
    ("netfcaud", 1, 512),
    ("netcnnlip", 1, 96),
    ("netcnnlip", 5, 256),
    ("netcnnlip", 9, 256),
    ("netcnnlip", 12, 256),
    ("netcnnlip", 15, 256),
    ("netcnnlip", 19, 512),
    ("netfclip", 1, 512),
]


def official_state(seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    state = {}
    for module, i, shape in CONV:
        fan_in = int(np.prod(shape[1:]))
        state[f"{module}.{i}.weight"] = torch.randn(shape, generator=g) / fan_in**0.5
        state[f"{module}.{i}.bias"] = 0.01 * torch.randn(shape[0], generator=g)
    for module, i, c in NORM:
        state[f"{module}.{i}.weight"] = 1 + 0.1 * torch.randn(c, generator=g)
        state[f"{module}.{i}.bias"] = 0.1 * torch.randn(c, generator=g)
        state[f"{module}.{i}.running_mean"] = 0.1 * torch.randn(c, generator=g)
        state[f"{module}.{i}.running_var"] = 1 + torch.rand(c, generator=g)
    return state


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("syncnet") / "syncnet_v2.model"
    with open(path, "wb") as f:
        torch.save(official_state(), f)
    return path


@pytest.mark.slow
def test_official_checkpoint_loads_every_tensor(checkpoint):
    model = load_syncnet(checkpoint)
    state = official_state()
    own = model.state_dict()
    assert {k for k in own if not k.endswith("num_batches_tracked")} == set(state)
    for key, value in state.items():
        assert torch.equal(own[key], value), key
    assert not model.training
    with torch.inference_mode():
        lips = model.lips(torch.rand(2, 3, 5, 224, 224) * 255)
        audio = model.audio(torch.randn(2, 1, 13, 20))
    assert lips.shape == (2, 1024) and audio.shape == (2, 1024)
    assert torch.isfinite(lips).all() and torch.isfinite(audio).all()


@pytest.mark.slow
def test_wrapped_and_broken_checkpoints(checkpoint, tmp_path):
    state = official_state()
    wrapped = tmp_path / "wrapped.model"
    torch.save({f"__S__.{k}": v for k, v in state.items()}, wrapped)  # a SyncNetInstance's own state dict
    assert torch.equal(load_syncnet(wrapped).state_dict()["netfclip.3.bias"], state["netfclip.3.bias"])
    missing = tmp_path / "missing.model"
    torch.save({k: v for k, v in state.items() if not k.startswith("netfcaud")}, missing)
    with pytest.raises(ModelLoadError, match="missing"):
        load_syncnet(missing)
    bad = dict(state)
    bad["netcnnlip.0.weight"] = torch.zeros(96, 3, 3, 7, 7)
    torch.save(bad, tmp_path / "bad.model")
    with pytest.raises(ModelLoadError, match="wrong shape"):
        load_syncnet(tmp_path / "bad.model")
    (tmp_path / "junk.model").write_bytes(b"junk")
    with pytest.raises(ModelLoadError, match="not a readable"):
        load_syncnet(tmp_path / "junk.model")
    with pytest.raises(WeightsMissingError, match="does not ship"):
        load_syncnet(tmp_path / "none.model")


def test_offsets_distances_and_confidence():
    rng = np.random.default_rng(0)
    content = rng.standard_normal((60, 16))
    video = content[2:52]
    late = content[:50]  # what video position i shows is heard at audio position i + 2: the audio lags
    scores = sync_offsets(video, late, vshift=5)
    assert scores["offset_frames"] == -2
    early = content[4:54]  # heard at i - 2: the audio leads
    assert sync_offsets(video, early, vshift=5)["offset_frames"] == 2
    unrelated = sync_offsets(video, rng.standard_normal((50, 16)), vshift=5)
    # only the 2 positions whose partner falls past the end are far at the best offset
    assert scores["lse_d"] < 0.1 * unrelated["lse_d"] and scores["lse_c"] > 1.0
    assert unrelated["lse_c"] < scores["lse_c"] / 4


def test_mfcc_rate_and_crops():
    t = np.arange(16000) / 16000
    mfcc = mfcc_features(0.3 * np.sin(2 * np.pi * 220 * t))
    assert mfcc.shape[0] == 13 and abs(mfcc.shape[1] - 100) <= 1
    frames = np.zeros((20, 200, 160, 3), np.uint8)
    frames[:, 90:110, 70:90] = (255, 0, 0)  # a red square at the face centre (RGB)
    boxes = np.tile([50.0, 60.0, 110.0, 140.0], (20, 1))
    crops = syncnet_crops(iter(frames), fps=20, boxes=boxes)
    assert crops.shape == (25, 224, 224, 3)  # 1 s at 25 fps
    # the box centre (80, 100) sits 1/2.8 of the way down and half way across the crop; BGR order
    y, x = int(224 / 2.8), 112
    assert tuple(crops[0, y, x]) == (0, 0, 255)


@pytest.mark.slow
def test_eval_reports_lse_with_given_weights(checkpoint, tmp_path):
    pytest.importorskip("mediapipe")
    pytest.importorskip("av")
    from talkinghead import Avatar
    from talkinghead.cache import ModelCache
    from talkinghead.eval import evaluate
    from talkinghead.testing import tone_speech

    speech = tone_speech(["one", "two", "three", "four"])
    portrait = Path(__file__).resolve().parents[1] / "assets" / "portrait_astronaut.png"
    Avatar(portrait, tts=None, animator="viseme", writer="mp4", max_size=256, fps=25, cache=ModelCache()).speak(
        speech, tmp_path / "v.mp4"
    )
    d = evaluate(tmp_path / "v.mp4", syncnet=checkpoint).data["syncnet"]
    assert set(d) >= {"lse_d", "lse_c", "offset_frames", "mean_distance_by_offset"}
    assert d["positions"] == 40 - 5 and len(d["mean_distance_by_offset"]) == 31
    assert np.isfinite(d["lse_d"]) and d["lse_c"] >= 0


@pytest.mark.real_weights
def test_real_syncnet_weights(tmp_path):
    """Opt-in: TALKINGHEAD_SYNCNET_WEIGHTS=/path/to/syncnet_v2.model."""
    weights = os.environ.get("TALKINGHEAD_SYNCNET_WEIGHTS")
    if not weights:
        pytest.skip("set TALKINGHEAD_SYNCNET_WEIGHTS to the path of syncnet_v2.model")
    pytest.importorskip("piper")
    from talkinghead import Avatar
    from talkinghead.cache import ModelCache
    from talkinghead.eval import evaluate

    portrait = Path(__file__).resolve().parents[1] / "assets" / "portrait_astronaut.png"
    avatar = Avatar(portrait, animator="viseme", fps=25, cache=ModelCache())
    avatar.say("Hello there, I am an astronaut. We flew to the station and back again.", tmp_path / "v.mp4")
    d = evaluate(tmp_path / "v.mp4", syncnet=weights).data["syncnet"]
    # published LSE-D of real and good synthetic talking faces lie around 6-9, LSE-C around 3-8
    assert 4 < d["lse_d"] < 12 and d["lse_c"] > 1 and abs(d["offset_frames"]) <= 3, d
