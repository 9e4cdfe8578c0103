"""The ``gfpgan`` enhancer backend: detection/tracking, restore variants, paste-back, refusals.

The restoration network is the tiny seeded GFPGAN of ``talkinghead.testing.nets`` (the real
architecture at 512 px with narrow channels: milliseconds per face; the full-size network is checked
against upstream in ``test_face_gfpgan.py``); the detector is a fake that reports fixed landmarks on
frames carrying a marker pixel, because RetinaFace with synthetic weights never reaches the 0.97
threshold.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
cv2 = pytest.importorskip("cv2")

from talkinghead.backends.gfpgan import GFPGANEnhancer  # noqa: E402
from talkinghead.errors import ConfigError, StageError, WeightsMissingError  # noqa: E402
from talkinghead.face import align  # noqa: E402
from talkinghead.face import gfpgan as G  # noqa: E402
from talkinghead.testing import nets  # noqa: E402
from talkinghead.plugins import create_backend  # noqa: E402
from talkinghead.values import Face, FrameChunk  # noqa: E402

SIZE = 160
LANDMARKS = align.face_template(512) * 0.22 + np.array([25.0, 12.0])  # a ~110 px face in a 160 px frame


def _frames(n: int, with_face: list[bool]) -> np.ndarray:
    rng = np.random.default_rng(3)
    base = cv2.GaussianBlur(rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8), (9, 9), 0)
    frames = np.repeat(base[None], n, axis=0)
    for i, face in enumerate(with_face):
        frames[i, 0, 0] = (255, 0, 255) if face else (0, 0, 0)
        frames[i, 1:4, 1:4] = i * 40  # frames differ a little
    return frames


class MarkerDetector:
    """Reports one face (or ``n_faces``) on frames whose top-left pixel is magenta."""

    def __init__(self, n_faces: int = 1) -> None:
        self.calls = 0
        self.n_faces = n_faces

    def load(self) -> None:
        pass

    def detect_batch(self, frames):
        out = []
        for f in frames:
            self.calls += 1
            if tuple(f[0, 0]) != (255, 0, 255):
                out.append([])
                continue
            faces = []
            for k in range(self.n_faces):
                lm = LANDMARKS * (1 - 0.3 * k) + 5 * k
                x0, y0 = lm.min(0) - 20
                x1, y1 = lm.max(0) + 20
                faces.append(Face(box=(x0, y0, x1, y1), score=0.99, landmarks=lm))
            out.append(faces)
        return out


class GrayNet:
    """Stands in for GFPGAN: outputs mid-gray and records the input shapes."""

    def __init__(self, fail: bool = False) -> None:
        self.shapes: list[tuple[int, ...]] = []
        self.fail = fail

    def __call__(self, x, *, noise="stored", seed=0, stop_at=None):
        self.shapes.append(tuple(x.shape))
        if self.fail:
            raise RuntimeError("mat1 and mat2 shapes cannot be multiplied (1x1024 and 4096x8192)")
        r = stop_at or x.shape[-1]
        return torch.zeros(x.shape[0], 3, r, r)


@pytest.fixture(scope="module")
def net():
    return nets.tiny_gfpgan()


def _restore_expected(net, frame, crop_size: int, **kw) -> tuple[np.ndarray, np.ndarray]:
    affine = align.estimate_affine(LANDMARKS, crop_size)
    crop = align.warp_face(frame, affine, crop_size, tuple(reversed(align.BORDER_VALUE)))
    with torch.inference_mode():
        face = G.to_uint8(net(G.to_input(crop[None]), **kw))[0]
    return face, affine


def _face_centre(img: np.ndarray) -> np.ndarray:
    c = LANDMARKS.mean(0).astype(int)
    return img[c[1] - 15 : c[1] + 15, c[0] - 15 : c[0] + 15].astype(np.int16)


def test_registered_and_light_to_construct():
    enh = create_backend("enhancer", "gfpgan", restore_size="align256", paste="square")
    assert isinstance(enh, GFPGANEnhancer) and enh.crop_size == 256 and not enh.needs_parsenet


@pytest.mark.parametrize(
    "cfg",
    [{"restore_size": "256"}, {"paste": "blend"}, {"noise": "fresh"}, {"detect_every": 0}, {"upscale": 0.5},
     {"multiple_faces": "first"}, {"batch_size": 0}],
)
def test_bad_config_is_config_error(cfg):
    with pytest.raises(ConfigError):
        GFPGANEnhancer(**cfg)


def test_missing_weights_name_the_file_and_url(tmp_path):
    enh = GFPGANEnhancer(weights=tmp_path / "GFPGANv1.4.pth")
    with pytest.raises(WeightsMissingError, match="GFPGANv1.4.pth") as info:
        enh.load()
    assert G.GFPGAN_URL in str(info.value)


def test_network_failure_raises_instead_of_pasting_unrestored_crop():
    frames = _frames(2, [True, True])
    enh = GFPGANEnhancer.from_components(detector=MarkerDetector(), net=GrayNet(fail=True))
    with pytest.raises(StageError, match="GFPGAN failed"):
        enh.enhance(FrameChunk(frames))
    assert enh.faces_restored == 0


def test_full512_restores_faces_with_the_network_and_passes_faceless_frames(net):
    frames = _frames(2, [True, False])
    enh = GFPGANEnhancer.from_components(detector=MarkerDetector(), net=net, paste="square")
    out = enh.enhance(FrameChunk(frames.copy(), start=7))
    assert out.frames.shape == frames.shape and out.start == 7
    assert np.array_equal(out.frames[1], frames[1])  # no face: untouched
    assert enh.stats() == {"frames_seen": 2, "frames_without_face": 1, "faces_restored": 1, "detections_run": 2}
    # the pasted face is the network's restoration of the aligned crop, not the input
    face, affine = _restore_expected(net, frames[0], 512)
    inv = align.inverse_affine(affine, 1)
    expected = cv2.warpAffine(face, inv, (SIZE, SIZE))
    got = _face_centre(out.frames[0])
    assert np.abs(got - _face_centre(expected)).max() <= 2
    assert np.abs(got - _face_centre(frames[0])).mean() > 10
    # outside the face (corner away from the crop) the frame is unchanged
    assert np.array_equal(out.frames[0][-6:, -6:], frames[0][-6:, -6:])


def test_decoder256_with_tracking_between_detections(net):
    frames = _frames(2, [True, True])
    frames[1, 0, 0] = 0  # the detector would see no face on frame 1: it must not be asked
    det = MarkerDetector()
    enh = GFPGANEnhancer.from_components(detector=det, net=net, restore_size="decoder256", detect_every=2)
    out = enh.enhance(FrameChunk(frames.copy(), start=0))
    assert det.calls == 1  # frame 1 reused the landmarks of frame 0
    assert enh.faces_restored == 2 and enh.frames_without_face == 0
    face, _ = _restore_expected(net, frames[1], 512, stop_at=256)
    assert face.shape == (256, 256, 3)
    for i in range(2):
        assert np.abs(_face_centre(out.frames[i]) - _face_centre(frames[i])).mean() > 10
    # the frame-1 paste equals the stop-at-256 output warped back with the halved affine
    affine256 = align.estimate_affine(LANDMARKS, 512) * 0.5
    expected = cv2.warpAffine(face, align.inverse_affine(affine256, 1), (SIZE, SIZE))
    assert np.abs(_face_centre(out.frames[1]) - _face_centre(expected)).max() <= 3


def test_align256_resizes_to_512_for_the_network(net):
    frames = _frames(1, [True])
    calls = []

    def spy(x, **kw):
        calls.append(tuple(x.shape))
        return net(x, **kw)

    enh = GFPGANEnhancer.from_components(detector=MarkerDetector(), net=spy, restore_size="align256")
    out = enh.enhance(FrameChunk(frames.copy()))
    assert calls == [(1, 3, 512, 512)]
    assert out.frames.shape == frames.shape
    assert np.abs(_face_centre(out.frames[0]) - _face_centre(frames[0])).mean() > 10


def test_largest_face_only_and_batching():
    frames = _frames(2, [True, True])
    fake = GrayNet()
    enh = GFPGANEnhancer.from_components(detector=MarkerDetector(n_faces=2), net=fake, batch_size=3)
    enh.enhance(FrameChunk(frames.copy()))
    assert fake.shapes == [(3, 3, 512, 512), (1, 3, 512, 512)] and enh.faces_restored == 4
    fake2 = GrayNet()
    enh2 = GFPGANEnhancer.from_components(
        detector=MarkerDetector(n_faces=2), net=fake2, multiple_faces="largest", batch_size=3
    )
    out = enh2.enhance(FrameChunk(frames.copy()))
    assert fake2.shapes == [(2, 3, 512, 512)] and enh2.faces_restored == 2
    assert np.abs(_face_centre(out.frames[0]) - 128).max() <= 1  # the gray network output was pasted


def test_upscale_two_and_tracking_reset_on_new_video():
    frames = _frames(3, [True, False, True])
    det = MarkerDetector()
    enh = GFPGANEnhancer.from_components(detector=det, net=GrayNet(), upscale=2, paste="square", detect_every=5)
    out = enh.enhance(FrameChunk(frames.copy(), start=0))
    assert out.frames.shape == (3, 2 * SIZE, 2 * SIZE, 3)
    # frame 1 has no face on its own, but detection ran only on frame 0 and the face is tracked
    assert det.calls == 1 and enh.faces_restored == 3
    # faceless frames are only upscaled when upscale > 1
    enh.enhance(FrameChunk(frames[1:2].copy(), start=0))  # a new video: tracking reset, re-detected
    assert det.calls == 2 and enh.frames_without_face == 1
