"""ReconNet + align_img and crop geometry vs upstream SadTalker fixtures; MediaPipe landmarks."""

from pathlib import Path

import numpy as np
import pytest

from talkinghead.backends.sadtalker.preprocess import crop_geometry, crop_image
from talkinghead.face.landmarks import MEDIAPIPE_TO_68
from talkinghead.backends.sadtalker.recon import align_img

FIX = Path(__file__).parent / "fixtures" / "sadtalker"
MAN = FIX / "manifests"
REF = dict(np.load(FIX / "upstream_recon.npz"))


@pytest.mark.parametrize("tag", ["lm", "nolm"])
def test_align_img_matches_upstream(tag):
    res = align_img(REF["image"], REF["lm68"] if tag == "lm" else None)
    np.testing.assert_array_equal(res.image, REF[f"{tag}_aligned"])
    np.testing.assert_array_equal(res.trans_params, REF[f"{tag}_trans_params"])


@pytest.mark.slow
def test_recon_net_matches_upstream(tmp_path):
    torch = pytest.importorskip("torch")
    from talkinghead.backends.sadtalker import checkpoint
    from talkinghead.testing.fill import write_checkpoint
    from talkinghead.backends.sadtalker.recon import load_recon_net, source_coefficients

    path = write_checkpoint(MAN / "epoch_20.pth.json", tmp_path / "epoch_20.pth")
    net = load_recon_net(checkpoint.section(checkpoint.read_state(path), "net_recon", path))
    assert sum(p.numel() for p in net.parameters()) == 24034625
    coeff, full = source_coefficients(net, REF["image"], REF["lm68"])
    assert np.abs(full - REF["lm_full"]).max() < 1e-5
    np.testing.assert_allclose(coeff[:64], full[80:144])
    np.testing.assert_allclose(coeff[70:], REF["lm_trans_params"][2:])
    with torch.inference_mode():
        out = net(torch.from_numpy(REF["nolm_aligned"][None].astype(np.float32) / 255).permute(0, 3, 1, 2))
    assert np.abs(out.numpy()[0] - REF["nolm_full"]).max() < 1e-5


@pytest.mark.parametrize("name", ["astronaut", "tall", "wide", "huge"])
def test_crop_geometry_matches_upstream(name):
    ref = np.load(FIX / "upstream_crop.npz")
    w, h = ref[f"{name}_size"]
    geo = crop_geometry(ref[f"{name}_lm"], int(w), int(h))
    assert geo.rsize == tuple(ref[f"{name}_rsize"])
    assert geo.crop == tuple(ref[f"{name}_crop"])
    np.testing.assert_allclose(geo.quad, ref[f"{name}_quad"], atol=1e-9)
    if name == "tall":  # upstream clamps ry with the width; fix_ry uses the height
        assert geo.quad[3] == w
        assert crop_geometry(ref[f"{name}_lm"], int(w), int(h), fix_ry=True).quad[3] > w


def test_crop_modes():
    ref = np.load(FIX / "upstream_crop.npz")
    img = np.zeros((600, 300, 3), np.uint8)
    lm = ref["tall_lm"]
    out, info = crop_image(img, lm, "crop")
    lx, ly, rx, ry = (int(v) for v in info.quad)
    assert out.shape[:2] == (ry - ly, rx - lx) and info.box_size == (rx - lx, ry - ly)
    ext, info2 = crop_image(img, lm, "extcrop")
    c = info2.crop
    assert ext.shape[:2] == (c[3] - c[1], c[2] - c[0]) and info2.box == info.box
    whole, info3 = crop_image(img, None, "resize")
    assert whole.shape == img.shape and info3.crop is None
    from talkinghead.errors import ConfigError

    with pytest.raises(ConfigError):
        crop_image(img, lm, "zoom")


def test_mediapipe_mapping_table():
    assert len(MEDIAPIPE_TO_68) == 68 and len(set(MEDIAPIPE_TO_68)) == 68
    assert max(MEDIAPIPE_TO_68) < 468


def test_mediapipe_landmarks_on_portrait():
    pytest.importorskip("mediapipe")
    from PIL import Image

    from talkinghead.face.landmarks import Mesh68Landmarks as MediaPipeLandmarks

    img = np.asarray(Image.open(Path(__file__).parents[1] / "assets" / "portrait_astronaut.png").convert("RGB"))
    src = MediaPipeLandmarks("mediapipe")
    try:
        faces = src.detect(img)
    finally:
        src.close()
    assert len(faces) == 1
    lm = faces[0].landmarks
    assert lm.shape == (68, 2)
    # iBUG layout: right eye (image left) left of the left eye, nose between, mouth below nose
    assert lm[36:42, 0].mean() < lm[30, 0] < lm[42:48, 0].mean()
    assert lm[27, 1] < lm[30, 1] < lm[51, 1] < lm[57, 1] < lm[8, 1]
    assert lm[48, 0] < lm[54, 0] and lm[0, 0] < lm[16, 0]
    out, info = crop_image(img, lm, "crop")
    assert 100 < out.shape[0] <= img.shape[0] and 100 < out.shape[1] <= img.shape[1]
