"""The legacy SadTalker .pth set (256 only), written full-size from the manifests: loading, not rendering."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from sadtalker_weights import LEGACY_SET, write_weights_dir  # noqa: E402

from talkinghead.backends.sadtalker import checkpoint  # noqa: E402
from talkinghead.backends.sadtalker.backend import SadTalkerAnimator  # noqa: E402
from talkinghead.errors import ModelLoadError, WeightsMissingError  # noqa: E402

pytestmark = pytest.mark.slow  # writes the full-size legacy set (~700 MB of filled tensors)


@pytest.fixture(scope="module")
def legacy_dir(tmp_path_factory):
    return write_weights_dir(tmp_path_factory.mktemp("sadtalker_legacy"), LEGACY_SET)


def test_legacy_set_is_found_and_loads(legacy_dir):
    assert checkpoint.weights_present(legacy_dir)
    assert SadTalkerAnimator.weights_available(legacy_dir)
    assert checkpoint.renderer_path(legacy_dir, 256, None).name == checkpoint.LEGACY_RENDERER
    r = checkpoint.load_renderer(weights_dir=legacy_dir)
    assert r.files[0].endswith(checkpoint.LEGACY_RENDERER)
    assert r.mapping.coeff_nc == 70
    nets = checkpoint.load_coefficient_nets(weights_dir=legacy_dir)
    assert set(nets) == {"exp", "pose", "recon"}
    for m in (r.kp_detector, r.generator, *nets.values()):
        assert not m.training


def test_legacy_matches_bundle_tensors(legacy_dir):
    """A tensor of the legacy file equals the same canonical tensor of the bundle's fill."""
    from sadtalker_weights import MANIFESTS

    from talkinghead.testing import fill

    specs = fill.manifest_tensors(MANIFESTS / "SadTalker_V0.0.2_256.safetensors.json", ["generator", "kp_extractor"])
    r = checkpoint.load_renderer(weights_dir=legacy_dir)
    for net, prefix, key in ((r.generator, "generator", "first.conv.weight"),
                             (r.kp_detector, "kp_extractor", "kp.weight")):
        full = f"{prefix}.{key}"
        assert full in specs, full
        want = fill.fill_tensors({full: specs[full]}, rule="sadtalker")[full]
        assert torch.equal(net.state_dict()[key], torch.from_numpy(want))


def test_he_estimator_is_checked_strictly(legacy_dir):
    path = legacy_dir / checkpoint.LEGACY_RENDERER
    state = checkpoint.read_state(path)
    checkpoint._verify_and_drop_he_estimator(state, path)  # the intact section passes
    he = dict(state["he_estimator"])
    key = next(iter(he))
    broken = {**state, "he_estimator": {k: v for k, v in he.items() if k != key}}
    with pytest.raises(ModelLoadError, match="he_estimator"):
        checkpoint._verify_and_drop_he_estimator(broken, path)
    with pytest.raises(ModelLoadError, match="he_estimator"):
        checkpoint._verify_and_drop_he_estimator({k: v for k, v in state.items() if k != "he_estimator"}, path)


def test_legacy_forced_at_512_and_missing_files(legacy_dir, tmp_path):
    with pytest.raises(WeightsMissingError, match="only the 256 renderer"):
        checkpoint.renderer_path(legacy_dir, 512, True)
    assert not checkpoint.weights_present(legacy_dir, size=512)
    # renderer present but a coefficient file missing: named in the error
    (tmp_path / checkpoint.LEGACY_RENDERER).symlink_to(legacy_dir / checkpoint.LEGACY_RENDERER)
    (tmp_path / checkpoint.MAPPING[70]).symlink_to(legacy_dir / checkpoint.MAPPING[70])
    assert not checkpoint.weights_present(tmp_path)
    with pytest.raises(WeightsMissingError, match=checkpoint.LEGACY_AUDIO2EXP):
        checkpoint.load_coefficient_nets(weights_dir=tmp_path)


def test_legacy_wrong_section_and_swapped_files(legacy_dir, tmp_path):
    # a coefficient file under the renderer's name: no 'generator' section
    (tmp_path / checkpoint.LEGACY_RENDERER).symlink_to(legacy_dir / checkpoint.LEGACY_AUDIO2EXP)
    (tmp_path / checkpoint.MAPPING[70]).symlink_to(legacy_dir / checkpoint.MAPPING[70])
    with pytest.raises(ModelLoadError, match="no 'kp_detector' section|no 'generator' section"):
        checkpoint.load_renderer(weights_dir=tmp_path)
    # audio2pose weights under the audio2exp name: keys do not fit ExpNet
    d = tmp_path / "swap"
    d.mkdir()
    for name in (checkpoint.LEGACY_RENDERER, checkpoint.LEGACY_AUDIO2POSE, checkpoint.LEGACY_RECON):
        (d / name).symlink_to(legacy_dir / name)
    (d / checkpoint.LEGACY_AUDIO2EXP).symlink_to(legacy_dir / checkpoint.LEGACY_AUDIO2POSE)
    with pytest.raises(ModelLoadError, match=checkpoint.LEGACY_AUDIO2EXP):
        checkpoint.load_coefficient_nets(weights_dir=d)
