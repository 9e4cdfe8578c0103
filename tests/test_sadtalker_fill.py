"""Deterministic fill (reference §10) and official-format checkpoint writing."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from talkinghead.testing.fill import (
    anti_alias_kernel,
    fill_like,
    fill_manifest,
    fill_tensors,
    manifest_tensors,
    strip_prefix,
    write_checkpoint,
)

FIX = Path(__file__).parent / "fixtures" / "sadtalker"
MAN = FIX / "manifests"
CHECK = json.loads((FIX / "fill_check.json").read_text())["tensors"]
BUNDLE = MAN / "SadTalker_V0.0.2_256.safetensors.json"


def _group(key, manifest):
    g = key.split(".")[0]
    if g == "mapping":
        return "mapping[coeff_nc=%d]" % (73 if "00109" in manifest.name else 70)
    return g


def _sha(a):
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


@pytest.mark.parametrize(
    "manifest,prefixes",
    [
        pytest.param(BUNDLE, ["audio2exp", "audio2pose", "face_3drecon"], marks=pytest.mark.slow),
        (MAN / "mapping_00229-model.pth.tar.json", None),
        (MAN / "mapping_00109-model.pth.tar.json", None),
    ],
)
def test_fill_matches_fill_check_hashes(manifest, prefixes):
    state = fill_manifest(manifest, prefixes)
    assert state
    for key, arr in state.items():
        ref = CHECK[f"{_group(key, manifest)}:{key}"]
        assert list(arr.shape) == ref["shape"] and str(arr.dtype) == ref["dtype"], key
        assert _sha(arr) == ref["sha256"], key


def test_fill_spectral_norm_and_gaussian():
    specs = manifest_tensors(BUNDLE, ["generator", "kp_extractor"])
    picked = {k: v for k, v in specs.items() if k.startswith("generator.decoder.G_middle_0.conv_0.") or k == "kp_extractor.down.weight"}
    state = fill_tensors(picked, rule="sadtalker")
    for key, arr in state.items():
        ref = CHECK[f"{key.split('.')[0]}:{key}"]
        if key.endswith(("weight_u", "weight_v")):  # last-bit BLAS differences are allowed
            np.testing.assert_allclose(arr.ravel()[:4], ref["first4"], atol=1e-7)
            assert abs(float(arr.astype(np.float64).sum()) - ref["sum"]) < 1e-4
        else:
            assert _sha(arr) == ref["sha256"], key
    k = anti_alias_kernel()
    assert k.shape == (3, 1, 13, 13) and abs(k[0].sum() - 1) < 1e-6


@pytest.mark.slow
def test_write_checkpoint_formats(tmp_path):
    import torch
    from safetensors.numpy import load_file

    st = write_checkpoint(BUNDLE, tmp_path / "b.safetensors", prefixes=["audio2exp"])
    flat = load_file(str(st))
    assert set(flat) == {k for k in manifest_tensors(BUNDLE) if k.startswith("audio2exp.")}
    assert flat["audio2exp.audio_encoder.0.conv_block.1.num_batches_tracked"].dtype == np.int64

    pth = write_checkpoint(MAN / "mapping_00229-model.pth.tar.json", tmp_path / "m.pth.tar")
    obj = torch.load(str(pth), map_location="cpu", weights_only=True)
    assert list(obj) == ["mapping"]
    ref = strip_prefix(fill_manifest(MAN / "mapping_00229-model.pth.tar.json"), "mapping")
    assert set(obj["mapping"]) == set(ref)
    np.testing.assert_array_equal(obj["mapping"]["first.0.weight"].numpy(), ref["first.0.weight"])


def test_fill_like_with_a_prefix_gives_the_canonical_values():
    """``fill_like(module, prefix=...)`` fills each key with the value of ``<prefix>.<key>``: what an
    official-format file of that network holds (the tiny networks rely on it)."""
    torch = pytest.importorskip("torch")
    from talkinghead.testing import nets

    net = nets.tiny_mapping()
    state = fill_like(net, rule="sadtalker", prefix="mapping")
    specs = {f"mapping.{k}": (tuple(v.shape), "float32") for k, v in net.state_dict().items()}
    ref = strip_prefix(fill_tensors(specs, rule="sadtalker"), "mapping")
    assert set(state) == set(ref)
    for key, value in ref.items():
        assert torch.equal(state[key], torch.from_numpy(value)), key
    with pytest.raises(ValueError, match="rule"):
        fill_tensors({"a.weight": ((2, 2), "float32")}, rule="other")
