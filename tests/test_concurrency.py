"""Many threads, many portraits, one process: every video shows its own face (issue 8 §1).

Four portraits made from the astronaut (flipped and shifted, zoomed, shrunk and recoloured) have
different face boxes. 8 threads render them at once, first use included (no ``preload()``), 3 rounds:
on one Avatar per portrait, and on four Avatars sharing one cache. Each output's first frame must equal
its own portrait, and the pixels the animation changes must lie inside its own face box. Before the fix
the shared mediapipe graph failed ("Packet timestamp mismatch", then "Graph has errors"), crashed the
process, or returned one portrait's face box to another.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from talkinghead import Avatar, ModelCache  # noqa: E402
from talkinghead.face.landmarks import MeshLandmarks  # noqa: E402
from talkinghead.testing import FakeTTS, MemoryWriter  # noqa: E402
from talkinghead.values import Audio, PhonemeTiming  # noqa: E402

ASTRONAUT = Path(__file__).resolve().parents[1] / "assets" / "portrait_astronaut.png"
THREADS, ROUNDS = 8, 3
TIMEOUT_S = 240


def _portraits() -> list[np.ndarray]:
    base = cv2.cvtColor(cv2.imread(str(ASTRONAUT)), cv2.COLOR_BGR2RGB)
    a = cv2.resize(base, (320, 320), interpolation=cv2.INTER_AREA)
    b = np.full((320, 400, 3), 90, np.uint8)  # mirrored, moved to the right
    b[10:310, 96:396] = cv2.resize(base, (300, 300), interpolation=cv2.INTER_AREA)[:, ::-1]
    c = cv2.resize(base[40:360, 96:416], (320, 320), interpolation=cv2.INTER_AREA)  # zoomed in
    d = np.full((360, 320, 3), 200, np.uint8)  # lower down, colours changed
    small = cv2.resize(base, (280, 280), interpolation=cv2.INTER_AREA)
    d[76:356, 36:316] = np.clip(small[:, :, ::-1].astype(np.int16) * [1.1, 0.9, 1.0], 0, 255).astype(np.uint8)
    return [np.ascontiguousarray(x) for x in (a, b, c, d)]


@pytest.fixture(scope="module")
def portraits():
    images = _portraits()
    finder = MeshLandmarks()
    boxes = [np.array(finder.find(im).box) for im in images]
    finder.close()
    for i in range(4):
        for j in range(i + 1, 4):
            assert np.abs(boxes[i] - boxes[j]).max() > 20, "the test portraits must have different face boxes"
    return images, boxes


class PauseFirstTTS(FakeTTS):
    """FakeTTS with half a second of silence before the first word (the first frame is the portrait)."""

    def synthesize(self, text, *, voice=None):
        audio = super().synthesize(text, voice=voice)
        pause = 0.5
        samples = np.concatenate([np.zeros(int(pause * audio.sample_rate), np.float32), audio.samples])
        phonemes = (PhonemeTiming(" ", 0.0, pause),) + tuple(
            PhonemeTiming(p.phoneme, p.start + pause, p.end + pause) for p in audio.phonemes)
        return Audio(samples, audio.sample_rate, phonemes=phonemes)


def _avatar(image, cache):
    anim = ("viseme", {"blink_rate": 0, "head_motion": 0})
    return Avatar(image, tts=PauseFirstTTS(), animator=anim, writer=MemoryWriter(), cache=cache, fps=10)


def _run(jobs):
    """Run the callables in threads (bounded in time); return their results, re-raising the first error."""
    results: list = [None] * len(jobs)
    errors: list[BaseException] = []

    def work(i):
        try:
            results[i] = jobs[i]()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT_S)
    assert not any(t.is_alive() for t in threads), "a render hung"
    if errors:
        raise errors[0]
    return results


def _check(frames: np.ndarray, image: np.ndarray, box, others) -> None:
    assert frames.shape[1:] == image.shape
    first = np.abs(frames[0].astype(np.int16) - image).mean()
    assert first < 0.5, f"the first frame is not its own portrait (mean difference {first:.2f})"
    for other in others:
        if other.shape == image.shape:
            assert np.abs(frames[0].astype(np.int16) - other).mean() > 10 * max(first, 0.5)
    moved = np.abs(frames.astype(np.int16) - image).max(axis=(0, 3)) > 12
    assert moved.sum() > 30, "the mouth never moved"
    ys, xs = np.nonzero(moved)
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    inside = (xs >= x1 - 0.15 * w) & (xs <= x2 + 0.15 * w) & (ys >= y1 - 0.15 * h) & (ys <= y2 + 0.3 * h)
    assert inside.mean() > 0.97, f"{(~inside).sum()} changed pixels outside the face box {box}"
    mouth_y = y1 + 0.55 * h  # the motion is centred low in the face box, where the mouth is
    assert y1 + 0.3 * h < ys.mean() < y2 + 0.1 * h and x1 < xs.mean() < x2, (xs.mean(), ys.mean(), box, mouth_y)


@pytest.mark.slow
def test_one_avatar_many_threads_first_use(portraits, tmp_path):
    images, boxes = portraits
    for rnd in range(ROUNDS):
        for p, (image, box) in enumerate(zip(images, boxes)):
            av = _avatar(image, ModelCache())  # fresh cache: the threads race to load and prepare
            paths = [tmp_path / f"one-{rnd}-{p}-{t}.mp4" for t in range(THREADS)]
            _run([lambda path=path, av=av: av.say("hello there", path) for path in paths])
            others = [im for k, im in enumerate(images) if k != p]
            for path in paths:
                _check(av.writer.outputs[str(path)], image, box, others)


@pytest.mark.slow
def test_several_avatars_share_one_cache(portraits, tmp_path):
    images, boxes = portraits
    for rnd in range(ROUNDS):
        cache = ModelCache()
        avatars = [_avatar(im, cache) for im in images]
        jobs, expect = [], []
        for t in range(THREADS):
            k = t % len(avatars)
            path = tmp_path / f"many-{rnd}-{t}.mp4"
            jobs.append(lambda av=avatars[k], path=path: av.say("hello there", path))
            expect.append((k, path))
        _run(jobs)
        for k, path in expect:
            others = [im for j, im in enumerate(images) if j != k]
            _check(avatars[k].writer.outputs[str(path)], images[k], boxes[k], others)
        # one animator, loaded once, one prepared portrait per image
        assert len({id(a.animator) for a in avatars}) == 1
        assert len(cache._prepared) == len(images)


def test_prepared_is_computed_once_per_key_under_concurrent_first_use():
    cache = ModelCache()
    calls = []
    gate = threading.Event()

    def compute():
        calls.append(1)
        gate.wait(5)
        return object()

    results = []
    threads = [threading.Thread(target=lambda: results.append(cache.prepared(("k",), compute))) for _ in range(8)]
    for t in threads:
        t.start()
    gate.set()
    for t in threads:
        t.join(10)
    assert len(calls) == 1 and len(results) == 8 and all(r is results[0] for r in results)


def test_backend_keys_are_content_not_identity():
    from talkinghead.testing import FakeAnimator

    cache = ModelCache()
    a = cache.backend("animator", "viseme", {"seed": 1})
    assert cache.backend_key(a) == cache.backend_key(cache.backend("animator", "viseme", {"seed": 1}))
    assert cache.backend_key(a) != cache.backend_key(cache.backend("animator", "viseme", {"seed": 2}))
    # instances given by the app get a token of their own that a later object never inherits
    keys = set()
    for _ in range(50):
        fake = FakeAnimator()
        keys.add(cache.backend_key(fake))
        del fake
    assert len(keys) == 50


def test_loaded_flag_is_not_inherited_by_a_new_object():
    class Counting:
        stage, name = "animator", "counting"

        def __init__(self):
            self.loads = 0

        def load(self):
            self.loads += 1

    cache = ModelCache()
    for _ in range(20):  # ids of collected objects are reused; each new object must still load
        obj = Counting()
        cache.ensure_loaded(obj)
        cache.ensure_loaded(obj)
        assert obj.loads == 1
        del obj
