"""Building a bank: speech set -> the source's driving parameters -> K states -> K rendered frames.

The build is resumable: the plan (the K states) is saved before any frame is rendered, and each
frame as soon as it is rendered (:class:`~.pack.BuildDir`); a build started again with the same
key renders only the frames that are missing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from ...values import Portrait
from .cluster import kmeans, standardize
from .pack import FORMAT, FORMAT_VERSION, BankPack, BuildDir
from .speech import speak_sentences, speech_set_id

log = logging.getLogger(__name__)

__all__ = ["build_bank", "PARAM_FPS", "BuildProgress"]

#: Frame rate at which the speech set's parameters are sampled (SadTalker's native rate).
PARAM_FPS = 25.0
#: Bank frames rendered per call of the source's renderer.
RENDER_BATCH = 4

BuildProgress = Callable[[str, int, int], None]
"""``progress(stage, done, total)`` with stage ``speech`` (sentences), ``render`` (bank frames)."""


def build_bank(source: Any, portrait: Portrait, *, k: int, tts: Any, key: str, manifest: dict[str, Any],
               build_dir: BuildDir, multiple_faces: str = "largest", seed: int = 0,
               sentences: int | None = None, progress: BuildProgress | None = None) -> BankPack:
    """Build (or finish building) the bank of ``portrait`` for the bankable ``source`` animator.

    Args:
        source: a loaded :class:`~talkinghead.stages.BankableAnimator`.
        portrait: the portrait.
        k: number of bank frames.
        tts: a loaded TTS backend that speaks the speech set (used only when no plan is saved yet).
        key: identifies this build; a saved plan with another key is discarded.
        manifest: what the pack's manifest records besides the build facts added here.
        build_dir: where the partial build lives.
        multiple_faces: passed to the source's ``prepare``.
        seed: seeds the k-means draws.
        sentences: use only the first ``sentences`` of the speech set (tests, quick looks).
        progress: ``progress(stage, done, total)``.
    """
    t0 = time.perf_counter()
    prepared = source.prepare(portrait, multiple_faces=multiple_faces)
    plan = build_dir.load_plan(key)
    if plan is None:
        state = source.bank_state(prepared)
        play = source.bank_restore(state)
        chunks, seconds = [], 0.0
        for audio in speak_sentences(tts, limit=sentences,
                                     progress=(lambda d, n: progress("speech", d, n)) if progress else None):
            chunks.append(np.asarray(source.bank_parameters(play, audio, fps=PARAM_FPS), np.float32))
            seconds += audio.duration
        params = np.concatenate(chunks)
        mean, scale = standardize(params)
        z = (params - mean) / scale
        centres, labels = kmeans(z, k, seed=seed, first=z[0])  # z[0]: the silence before the first sentence
        states = (centres * scale + mean).astype(np.float32)
        counts = np.bincount(labels, minlength=len(states))
        info = {**manifest, "format": FORMAT, "version": FORMAT_VERSION, "build_key": key, "k": int(len(states)),
                "dims": int(params.shape[1]), "seed": int(seed),
                "speech": {"set": speech_set_id(), "seconds": round(seconds, 3), "frames": int(len(params)),
                           "fps": PARAM_FPS, "sentences": len(chunks)},
                "quantisation_rms": float(np.sqrt(((z - centres[labels]) ** 2).sum(1).mean())),
                "plan_seconds": round(time.perf_counter() - t0, 3)}
        build_dir.save_plan(info, {"states": states, "mean": mean, "scale": scale, "counts": counts}, state)
        log.info("bank: %d states from %d frames (%.1f s of speech) in %.1f s", len(states), len(params), seconds,
                 time.perf_counter() - t0)
    else:
        info, arrays, state = plan
        states, mean, scale = arrays["states"], arrays["mean"], arrays["scale"]
        log.info("bank: resuming the build in %s", build_dir.path)
    frames: list[np.ndarray | None] = [build_dir.load_frame(i) for i in range(len(states))]
    done = sum(f is not None for f in frames)
    if progress is not None:
        progress("render", done, len(states))
    t1 = time.perf_counter()
    missing = [i for i, f in enumerate(frames) if f is None]
    for b0 in range(0, len(missing), RENDER_BATCH):
        idx = missing[b0:b0 + RENDER_BATCH]
        rendered = np.asarray(source.bank_render(prepared, states[idx]))
        if rendered.shape[0] != len(idx) or rendered.dtype != np.uint8:
            raise ValueError(f"{type(source).__name__}.bank_render returned {rendered.dtype} {rendered.shape} "
                             f"for {len(idx)} parameter vectors")
        for i, f in zip(idx, rendered):
            build_dir.save_frame(i, f)
            frames[i] = f
        done += len(idx)
        if progress is not None:
            progress("render", done, len(states))
    render_s = time.perf_counter() - t1
    info = {**info, "render_seconds": round(render_s + float(info.get("render_seconds", 0.0)), 3),
            "rendered_now": len(missing)}
    info.pop("build_key", None)
    info["key"] = key
    return BankPack(info, np.asarray(states, np.float32), np.asarray(mean, np.float32),
                    np.asarray(scale, np.float32), np.stack(frames), state)  # type: ignore[arg-type]
