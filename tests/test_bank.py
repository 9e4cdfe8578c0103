"""The bank animator on the viseme source: build (resumable, cached), avatar packs, play, hostile packs.

The viseme animator renders in milliseconds, so these run the real build and play paths end to end;
the SadTalker source is tested in ``test_bank_sadtalker.py``.
"""

from __future__ import annotations

import json
import threading
import zipfile

import numpy as np
import pytest

pytest.importorskip("cv2")
pytest.importorskip("mediapipe")

from talkinghead import Avatar  # noqa: E402
from talkinghead.backends.bank import BankAnimator, BankPack, read_pack, write_pack  # noqa: E402
from talkinghead.backends.bank.cluster import kmeans, standardize  # noqa: E402
from talkinghead.backends.bank.pack import BuildDir  # noqa: E402
from talkinghead.backends.bank.player import BankPlayer  # noqa: E402
from talkinghead.backends.bank.speech import sentences, speech_set_id  # noqa: E402
from talkinghead.backends.viseme import VisemeAnimator  # noqa: E402
from talkinghead.backends.viseme.timeline import CHANNELS  # noqa: E402
from talkinghead.errors import ConfigError, ModelLoadError  # noqa: E402
from talkinghead.io import load_image  # noqa: E402
from talkinghead.stages import frame_count, is_bankable  # noqa: E402
from talkinghead.testing import FakeAnimator, FakeTTS, MemoryWriter, tone_speech  # noqa: E402

K = 6
SENTENCES = 3


class CountingViseme(VisemeAnimator):
    """The viseme animator, counting the parameter vectors it renders (and able to stop a build)."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.rendered = 0
        self.fail_after: int | None = None

    def bank_render(self, prepared, params):
        if self.fail_after is not None and self.rendered >= self.fail_after:
            raise KeyboardInterrupt("stopped by the test")
        self.rendered += len(params)
        return super().bank_render(prepared, params)


def _bank(tmp_path, **kw) -> BankAnimator:
    opts = dict(source="viseme", k=K, tts=FakeTTS(), sentences=SENTENCES, bank_dir=tmp_path)
    opts.update(kw)
    return BankAnimator(**opts)


@pytest.fixture(scope="module")
def portrait(portrait_path):
    from talkinghead.values import Portrait

    return Portrait(load_image(portrait_path).image)


@pytest.fixture(scope="module")
def built(tmp_path_factory, portrait):
    """One bank built into a module cache folder: (animator, prepared, source counting renders)."""
    folder = tmp_path_factory.mktemp("banks")
    src = CountingViseme()
    bank = _bank(folder, source=src)
    prepared = bank.prepare(portrait)
    return bank, prepared, src


# -- the interface -----------------------------------------------------------------------------------
def test_builtin_sources_are_bankable():
    from talkinghead.backends.sadtalker import SadTalkerAnimator

    assert is_bankable(VisemeAnimator()) and is_bankable(SadTalkerAnimator())
    assert not is_bankable(FakeAnimator())
    assert "bankable" in VisemeAnimator.capabilities and "bankable" in SadTalkerAnimator.capabilities


@pytest.mark.slow
def test_viseme_bank_render_and_compose_equal_animate(portrait):
    """The contract: compose(render(parameters(audio))) is exactly what the source animates."""
    src = VisemeAnimator()
    prepared = src.prepare(portrait)
    play = src.bank_restore(src.bank_state(prepared))
    audio = tone_speech(["one", "two"])
    params = src.bank_parameters(play, audio, fps=20)
    assert params.shape == (frame_count(audio.duration, 20), len(CHANNELS)) and params.dtype == np.float32
    direct = np.concatenate([c.frames for c in src.animate(prepared, audio, fps=20)])
    banked = src.bank_compose(play, src.bank_render(prepared, params))
    assert banked.shape == direct.shape
    # float32 parameters (the protocol's type) against the animator's float64 drive: a level at most
    assert np.abs(banked.astype(int) - direct).max() <= 1 and np.mean(banked != direct) < 0.01
    assert params[:, CHANNELS.index("jaw")].max() > 0.2  # the jaw opens on the tone bursts


def test_speech_set_is_bundled():
    text = sentences()
    assert len(text) >= 30 and all(len(s) > 10 for s in text)
    assert speech_set_id().startswith("en-")
    joined = " ".join(text).lower()
    for word in ("measure", "judge", "think", "who", "boy", "church"):  # ʒ, dʒ, θ, u, ɔɪ, tʃ
        assert word in joined


# -- clustering -------------------------------------------------------------------------------------
def test_kmeans_is_seeded_and_covers_clusters():
    rng = np.random.default_rng(1)
    blobs = np.concatenate([rng.normal(c, 0.05, (50, 2)) for c in ((0, 0), (3, 0), (0, 3), (3, 3))])
    c1, lab = kmeans(blobs, 4, seed=3)
    c2, _ = kmeans(blobs, 4, seed=3)
    assert np.array_equal(c1, c2)
    found = sorted(map(tuple, np.round(c1).astype(int).tolist()))
    assert found == [(0, 0), (0, 3), (3, 0), (3, 3)]
    assert len(set(lab.tolist())) == 4
    few, lab2 = kmeans(np.array([[0.0, 1.0], [0.0, 1.0], [2.0, 2.0]]), 5)
    assert len(few) == 2 and lab2.tolist() == [0, 0, 1]
    mean, scale = standardize(np.array([[0.0, 5.0], [2.0, 5.0]]))
    assert mean.tolist() == [1.0, 5.0] and scale[0] == 1.0 and 0 < scale[1] < 1e-2


# -- build, cache, play --------------------------------------------------------------------------------
def test_build_writes_a_pack_into_the_cache(built, portrait):
    _, prepared, src = built
    assert prepared.path is not None and prepared.path.is_file() and prepared.path.suffix == ".thbank"
    assert not BuildDir(prepared.path).path.exists()  # the partial build is gone
    pack = prepared.pack
    m = pack.manifest
    assert pack.k == K and pack.states.shape == (K, len(CHANNELS))
    assert m["source"] == "viseme" and m["portrait"] == portrait.key and m["speech"]["sentences"] == SENTENCES
    assert m["speech"]["set"] == speech_set_id() and m["speech"]["frames"] > 50
    roi = prepared.play.roi
    assert pack.frames.shape == (K, roi[3] - roi[1], roi[2] - roi[0], 3)
    assert src.rendered == K
    # the states spread over the parameters: closed and open mouths are both in the bank
    jaw = pack.states[:, CHANNELS.index("jaw")]
    assert jaw.min() < 0.05 and jaw.max() > 0.3


def test_second_prepare_uses_the_cache(built, portrait):
    bank, prepared, src = built
    before = src.rendered
    again = bank.prepare(portrait)
    assert src.rendered == before
    assert np.array_equal(again.pack.frames, prepared.pack.frames)


def test_play_yields_every_frame_close_to_the_direct_render(built, portrait):
    bank, prepared, _ = built
    audio = tone_speech(["hello", "there", "again"])
    chunks = list(bank.animate(prepared, audio, fps=25))
    n = frame_count(audio.duration, 25)
    assert [c.start for c in chunks] == list(range(0, n, bank.chunk_frames))
    frames = np.concatenate([c.frames for c in chunks])
    assert frames.shape == (n,) + portrait.image.shape
    direct = np.concatenate([c.frames for c in bank.source.animate(bank.source.prepare(portrait), audio, fps=25)])
    mse = np.mean((frames.astype(np.float64) - direct) ** 2)
    psnr = 10 * np.log10(255**2 / max(mse, 1e-9))
    assert psnr > 30, psnr
    # outside the head region the portrait is untouched
    x0, y0, x1, y1 = prepared.play.roi
    outside = frames.copy()
    outside[:, y0:y1, x0:x1] = portrait.image[y0:y1, x0:x1]
    assert np.array_equal(outside, np.broadcast_to(portrait.image, frames.shape))


def test_interpolation_modes(built):
    _, prepared, _ = built
    pack = prepared.pack
    nearest = BankPlayer(pack.states, pack.mean, pack.scale, pack.frames, interpolation="nearest")
    flow = BankPlayer(pack.states, pack.mean, pack.scale, pack.frames, interpolation="flow", flow_preset="ultrafast")
    # exactly on a state: that frame, in every mode
    assert np.array_equal(nearest.render(pack.states[2:3])[0], pack.frames[2])
    assert np.array_equal(flow.render(pack.states[2:3])[0], pack.frames[2])
    # half way between two states: the flow frame is neither end, and closer to their blend than to either
    a, b = 0, int(flow._near[0, 0])
    mid = (pack.states[a] + pack.states[b]) / 2
    a2, b2, t = flow.match(mid[None])
    assert {int(a2[0]), int(b2[0])} == {a, b} and 0.3 < t[0] < 0.7
    out = flow.render(mid[None])[0].astype(np.float64)
    fa, fb = pack.frames[a].astype(np.float64), pack.frames[b].astype(np.float64)
    assert np.abs(out - fa).mean() > 0 and np.abs(out - fb).mean() > 0
    assert np.abs(out - (fa + fb) / 2).mean() < min(np.abs(out - fa).mean(), np.abs(out - fb).mean()) + 1.0
    only = nearest.render(mid[None])[0]
    assert any(np.array_equal(only, f) for f in pack.frames)


def test_concurrent_clips_on_one_portrait(built):
    bank, prepared, _ = built
    audio = tone_speech(["one", "two", "three"])
    want = np.concatenate([c.frames for c in bank.animate(prepared, audio, fps=20)])
    got: list = [None] * 3

    def run(i):
        got[i] = np.concatenate([c.frames for c in bank.animate(prepared, audio, fps=20)])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert all(g is not None and np.array_equal(g, want) for g in got)


def test_avatar_with_the_bank_animator(built, portrait_path, tmp_path):
    bank, _, _ = built
    writer = MemoryWriter()
    av = Avatar(portrait_path, tts=FakeTTS(), animator=bank, writer=writer, fps=20)
    video = av.say("hello bank")
    assert video.n_frames == frame_count(writer.audio.duration, 20) and writer.frames.shape[0] == video.n_frames


def test_registered_by_name(tmp_path, portrait_path):
    from talkinghead.plugins import get_registry

    assert "bank" in get_registry().names("animator")
    bank = get_registry().create("animator", "bank", {"source": "viseme", "k": 4, "build": "never",
                                                      "bank_dir": str(tmp_path)})
    assert isinstance(bank, BankAnimator) and isinstance(bank.source, VisemeAnimator)


# -- resume ---------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_interrupted_build_resumes_where_it_stopped(tmp_path, portrait, built):
    _, reference, _ = built
    src = CountingViseme()
    src.fail_after = 4  # the first batch of 4 frames is saved, then the build is interrupted
    bank = _bank(tmp_path, source=src)
    with pytest.raises(KeyboardInterrupt):
        bank.build(portrait)
    path = bank.cache_path(portrait)
    part = BuildDir(path)
    assert not path.exists() and part.path.is_dir()
    assert sorted(p.name for p in part.path.glob("frame_*.npy")) == [f"frame_{i:05d}.npy" for i in range(4)]
    assert not list(part.path.glob("*.tmp"))
    src.fail_after = None
    src.rendered = 0
    assert bank.build(portrait) == path
    assert src.rendered == K - 4  # only the missing frames were rendered
    pack = read_pack(path)
    assert np.array_equal(pack.states, reference.pack.states) and np.array_equal(pack.frames, reference.pack.frames)
    assert not part.path.exists()


@pytest.mark.slow
def test_a_partial_build_of_another_configuration_is_discarded(tmp_path, portrait):
    bank = _bank(tmp_path, k=4)
    part = BuildDir(bank.cache_path(portrait))
    part.save_plan({"build_key": "something else"}, {"states": np.zeros((4, len(CHANNELS)), np.float32)}, {})
    part.save_frame(0, np.zeros((4, 4, 3), np.uint8))
    bank.build(portrait)
    pack = read_pack(bank.cache_path(portrait))
    assert pack.frames.shape[1:3] != (4, 4) and pack.k == 4


# -- avatar packs ---------------------------------------------------------------------------------------
def test_explicit_pack_plays_like_the_cache(built, portrait, tmp_path):
    bank, prepared, _ = built
    out = bank.export(prepared, tmp_path / "astronaut.thbank")
    other = BankAnimator(source="viseme", k=K, pack=out, build="never", bank_dir=tmp_path / "empty")
    p2 = other.prepare(portrait)
    audio = tone_speech(["pack"])
    a = np.concatenate([c.frames for c in bank.animate(prepared, audio, fps=20)])
    b = np.concatenate([c.frames for c in other.animate(p2, audio, fps=20)])
    assert np.array_equal(a, b)


def test_pack_for_another_portrait_or_source_is_refused(built, tmp_path, small_portrait):
    from talkinghead.values import Portrait

    bank, prepared, _ = built
    out = bank.export(prepared, tmp_path / "a.thbank")
    with pytest.raises(ConfigError, match="another portrait"):
        BankAnimator(source="viseme", pack=out).prepare(Portrait(small_portrait))
    with pytest.raises(ConfigError, match="built with the 'viseme' animator"):
        BankAnimator(source="sadtalker", pack=out).prepare(Portrait(small_portrait))


def test_missing_bank_with_build_never_names_the_command(tmp_path, portrait):
    with pytest.raises(ConfigError, match="talkinghead bank build"):
        _bank(tmp_path, build="never").prepare(portrait)


@pytest.mark.parametrize("damage", ["truncated", "not_zip", "no_manifest", "version", "nan", "shape", "member"])
def test_hostile_packs_are_refused(built, tmp_path, damage):
    _, prepared, _ = built
    good = write_pack(prepared.pack, tmp_path / "good.thbank")
    bad = tmp_path / "bad.thbank"
    data = good.read_bytes()
    if damage == "truncated":
        bad.write_bytes(data[: len(data) // 2])
    elif damage == "not_zip":
        bad.write_bytes(b"\x89PNG not a pack at all" * 10)
    else:
        with zipfile.ZipFile(good) as zin, zipfile.ZipFile(bad, "w") as zout:
            for item in zin.infolist():
                body = zin.read(item.filename)
                if damage == "no_manifest" and item.filename == "manifest.json":
                    continue
                if damage == "version" and item.filename == "manifest.json":
                    m = json.loads(body)
                    m["version"] = 99
                    body = json.dumps(m).encode()
                if (damage == "member" and item.filename == "frames.npy") or (
                        damage in ("nan", "shape") and item.filename == "states.npy"):
                    continue
                zout.writestr(item, body)
            if damage in ("nan", "shape"):
                import io

                buf = io.BytesIO()
                arr = prepared.pack.states.copy()
                if damage == "nan":
                    arr[0, 0] = np.nan
                else:
                    arr = arr[:-1]
                np.save(buf, arr)
                zout.writestr("states.npy", buf.getvalue())
    with pytest.raises(ModelLoadError):
        read_pack(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        read_pack(tmp_path / "missing.thbank")


def test_pack_arrays_are_checked():
    frames = np.zeros((2, 8, 8, 3), np.uint8)
    ok = {"manifest": {"format": "talkinghead-bank"}, "states": np.zeros((2, 3), np.float32),
          "mean": np.zeros(3, np.float32), "scale": np.ones(3, np.float32), "frames": frames}
    BankPack(**ok)
    for change in ({"scale": np.zeros(3, np.float32)}, {"frames": frames[:1]}, {"states": np.zeros((2, 3))},
                   {"manifest": {"format": "zip"}}, {"state": {"../x": np.zeros(1)}}):
        with pytest.raises(ModelLoadError):
            BankPack(**{**ok, **change})


# -- configuration errors ------------------------------------------------------------------------------
@pytest.mark.parametrize("opts, match", [
    ({"k": 1}, "k must be"),
    ({"interpolation": "cubic"}, "interpolation"),
    ({"build": "always"}, "build must be"),
    ({"flow_preset": "slow"}, "flow_preset"),
    ({"source": "bank"}, "itself"),
    ({"source": FakeAnimator()}, "cannot be banked"),
    ({"sentences": 0}, "sentences"),
    ({"source": "nope"}, "no animator backend"),
])
def test_bad_configuration(opts, match, tmp_path):
    with pytest.raises(ConfigError, match=match):
        BankAnimator(**{"source": "viseme", "bank_dir": tmp_path, **opts})


# -- command line -----------------------------------------------------------------------------------------
@pytest.mark.slow
def test_cli_bank_build_info_and_play(fakes, tmp_path, portrait_path):
    import io

    from talkinghead.cli import main

    target = tmp_path / "me.thbank"
    args = ["bank", "build", "--image", str(portrait_path), "--animator", "viseme", "-k", "4", "--tts", "fake",
            "--sentences", "2", "--bank-dir", str(tmp_path / "cache"), "--set", "animator.seed=2"]
    out, err = io.StringIO(), io.StringIO()
    assert main(args + ["-o", str(target)], out=out, err=err) == 0, err.getvalue()
    assert target.is_file() and "4 frames of viseme" in out.getvalue() and str(target) in out.getvalue()
    out = io.StringIO()
    assert main(["bank", "info", str(target)], out=out, err=io.StringIO()) == 0
    assert f"4 x {len(CHANNELS)} parameters" in out.getvalue() and "viseme" in out.getvalue()
    # the pack plays through the ordinary render command
    video = tmp_path / "hi.mp4"
    say = ["say", "-i", str(portrait_path), "-t", "hi there", "--tts", "fake", "--animator", "bank", "--fps", "10",
           "--set", "animator.source=viseme", "--set", "animator.k=4", "--set", f"animator.pack={target}",
           "-o", str(video), "-q"]
    err = io.StringIO()
    assert main(say, out=io.StringIO(), err=err) == 1  # the pack's frames were rendered with seed 2
    assert "differs in: seed" in err.getvalue() and not video.exists()
    err = io.StringIO()
    rc = main(say + ["--set", 'animator.source_config={"seed": 2}'], out=io.StringIO(), err=err)
    assert rc == 0, err.getvalue()
    assert video.is_file()
    # a wrong output name and a broken pack are errors a user can act on (exit 1, no traceback)
    err = io.StringIO()
    assert main(args + ["-o", str(tmp_path / "x.mp4")], out=io.StringIO(), err=err) == 1
    assert ".thbank" in err.getvalue()
    (tmp_path / "broken.thbank").write_bytes(b"nope")
    err = io.StringIO()
    assert main(["bank", "info", str(tmp_path / "broken.thbank")], out=io.StringIO(), err=err) == 1
    assert "not a readable avatar pack" in err.getvalue()
