"""The deterministic weight fill reproduces the reference manifests' fill_check values."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from talkinghead.testing import fill  # noqa: E402

FIXTURE = Path(__file__).parent / "fixtures" / "face" / "fill_check.json"


def _cases():
    data = json.loads(FIXTURE.read_text())
    for net, keys in data.items():
        for key, entry in keys.items():
            big = math.prod(entry["shape"]) > 2_000_000  # e.g. GFPGAN's 33M-value final_linear
            yield pytest.param(key, entry, id=f"{net}:{key}", marks=[pytest.mark.slow] if big else [])


def test_fill_fixture_covers_every_rule():
    data = json.loads(FIXTURE.read_text())
    keys = [k for net in data.values() for k in net]
    assert any(k.endswith("num_batches_tracked") for k in keys)
    assert any(k.endswith("running_var") for k in keys)
    assert any(".noises.noise" in k for k in keys)
    assert any(len(e["shape"]) == 5 for net in data.values() for e in net.values())
    assert len(data["detection_mobilenet0.25_Final"]) == 300


@pytest.mark.parametrize("key,entry", list(_cases()))
def test_fill_matches_manifest(key, entry):
    value = fill.fill_value(key, entry["shape"], entry["dtype"])
    assert list(value.shape) == entry["shape"]
    got = fill.fill_check(value)
    want = entry["fill_check"]
    assert got["first3"] == want["first3"]  # bit-exact float32 values
    assert got["sum"] == pytest.approx(want["sum"], rel=1e-9, abs=1e-9)
    assert got["abs_sum"] == pytest.approx(want["abs_sum"], rel=1e-9, abs=1e-9)


def test_fill_is_keyed_not_ordered():
    a = fill.fill_tensors({"x.weight": ((4, 3), "float32"), "y.bias": ((4,), "float32")}, rule="face")
    b = fill.fill_tensors({"y.bias": ((4,), "float32"), "x.weight": ((4, 3), "float32")}, rule="face")
    assert torch.equal(a["x.weight"], b["x.weight"]) and torch.equal(a["y.bias"], b["y.bias"])
    assert not torch.equal(a["x.weight"][:, 0], fill.fill_value("z.weight", (4, 3))[:, 0])


@pytest.mark.parametrize("legacy", [False, True])
@pytest.mark.parametrize("prefix", [False, True])
def test_flat_checkpoint_roundtrip(legacy, prefix):
    state = fill.fill_tensors({"a.weight": ((2, 3, 1, 1), "float32"), "a.num_batches_tracked": ((), "int64")}, rule="face")
    buf = io.BytesIO()
    fill.save_flat_checkpoint(state, buf, module_prefix=prefix, legacy_format=legacy)
    buf.seek(0)
    raw = buf.getvalue()
    assert (raw[:2] == b"PK") is (not legacy)  # zip archive vs legacy pickle stream
    loaded = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    want_key = "module.a.weight" if prefix else "a.weight"
    assert torch.equal(loaded[want_key], state["a.weight"])


def test_gfpgan_checkpoint_container():
    state = {"conv_body_first.weight": fill.fill_value("conv_body_first.weight", (32, 3, 1, 1))}
    buf = io.BytesIO()
    fill.save_gfpgan_checkpoint(state, buf)
    raw = buf.getvalue()
    assert raw[:2] != b"PK"  # legacy serialisation by default, as GFPGAN's conversion script
    loaded = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    assert set(loaded) == {"params_ema"}
    assert torch.equal(loaded["params_ema"]["conv_body_first.weight"], state["conv_body_first.weight"])
