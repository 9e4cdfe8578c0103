"""The work a job does: render a video from text or audio, or answer a conversation turn — plus
the WebVTT captions that go with each video.
"""

from __future__ import annotations

import logging
import os
from fractions import Fraction
from typing import Any

from ..text import split_sentences
from ..values import Audio, Portrait, Video
from .engine import Engine, RenderSpec
from .jobs import JobContext

log = logging.getLogger(__name__)

__all__ = ["render_video", "stream_video", "stream_sample_rate", "webvtt", "video_info"]

#: Longest caption cue (characters); longer sentences become several cues.
CUE_CHARS = 90


def video_info(video: Video, ctx: JobContext) -> dict[str, Any]:
    """The ``result`` of a job: the video's size, frame rate, length and byte size."""
    size = video.path.stat().st_size if video.path.exists() else 0
    return {
        "width": video.width, "height": video.height, "fps": video.fps, "frames": video.n_frames,
        "duration": round(video.duration, 3), "has_audio": video.has_audio, "bytes": size,
    }


def render_video(engine: Engine, ctx: JobContext, portrait: Portrait, spec: RenderSpec, *,
                 text: str | None = None, audio: Audio | None = None) -> dict[str, Any]:
    """Make the video of ``portrait`` saying ``text`` or speaking ``audio``; write it and its captions."""
    avatar = engine.avatar(portrait, spec, progress=ctx.progress)
    ctx.progress("prepare", 0, 1)
    engine.prepare(avatar)
    ctx.check()
    if text is not None:
        ctx.progress("tts", 0, 1)
        audio = avatar.synthesize(text, voice=engine.voice_profile(spec))
        ctx.progress("tts", 1, 1)
    assert audio is not None
    video = avatar.speak(audio, ctx.video_path)
    ctx.queue.store.commit_file("job", ctx.id, "video.mp4")
    if text:
        write_captions(ctx, [("", text)], video.duration)
    return video_info(video, ctx)


#: Audio rates a streamed video may use, best first (one frame must cover a whole number of samples).
_STREAM_RATES = (48000, 44100, 32000, 24000, 22050, 16000)
#: Characters of text spoken per second, to estimate the progress of a streamed text render.
_CHARS_PER_SECOND = 14.0


def stream_sample_rate(fps: float) -> int:
    """The best audio rate for a stream at ``fps`` (48 kHz when a frame covers a whole number of its samples)."""
    from ..streaming.clock import as_fps

    rate = as_fps(fps)
    for candidate in _STREAM_RATES:
        if (Fraction(candidate) / rate).denominator == 1:
            return candidate
    from ..errors import ConfigError

    raise ConfigError(f"a streamed video cannot run at {fps:g} fps (no common audio rate divides into whole frames); "
                      "choose a whole number such as 15, 20, 24, 25 or 30")


def stream_video(engine: Engine, ctx: JobContext, portrait: Portrait, spec: RenderSpec, *,
                 text: str | None = None, audio: Audio | None = None) -> dict[str, Any]:
    """Make the video as fragmented MP4 while it is rendered (``POST /v1/videos?stream=true``).

    The fragments go to the job's ``stream.mp4`` as they are encoded, so the HTTP response can send
    them as the file grows; when the render ends the file becomes the job's ``video.mp4`` (a
    fragmented MP4 plays like any other). A failed or cancelled render leaves no video.
    """
    from ..streaming.fmp4 import Fmp4Encoder
    from ..values import Video

    avatar = engine.avatar(portrait, spec)
    ctx.progress("prepare", 0, 1)
    engine.prepare(avatar)
    ctx.check()
    rate = stream_sample_rate(spec.fps)
    if audio is not None:
        total = max(1, int(audio.duration * spec.fps))
    else:
        total = max(1, int(len(text or "") / _CHARS_PER_SECOND * spec.fps))
    source = text if text is not None else audio
    path = ctx.file_path("stream.mp4")
    frames = 0
    with open(path, "wb") as out:
        encoder = Fmp4Encoder(out, preset="veryfast")
        try:
            for chunk in avatar.stream(source, voice=engine.voice_profile(spec), fps=spec.fps, sample_rate=rate,
                                       chunk_frames=5):
                encoder.write(chunk)
                frames += chunk.n_frames
                ctx.progress("animate", frames, max(total, frames + 1))
            stats = encoder.close()
        except BaseException:
            encoder.abort()
            out.close()
            path.unlink(missing_ok=True)
            raise
    final = ctx.video_path
    os.replace(path, final)
    ctx.queue.store.commit_file("job", ctx.id, "video.mp4")
    duration = stats.samples / stats.sample_rate
    if text:
        write_captions(ctx, [("", text)], duration)
    video = Video(final, float(spec.fps), stats.width, stats.height, stats.frames, duration, True)
    return {**video_info(video, ctx), "streamed": True}


def write_captions(ctx: JobContext, speeches: list[tuple[str, str]], duration: float) -> None:
    """Write ``captions.vtt`` for the job: each (speaker, text) spread over ``duration``."""
    path = ctx.file_path("captions.vtt")
    path.write_text(webvtt(speeches, duration), "utf-8")
    ctx.queue.store.commit_file("job", ctx.id, "captions.vtt")


def webvtt(speeches: list[tuple[str, str]], duration: float) -> str:
    """A WebVTT document: the texts cut into short cues, timed in proportion to their length.

    Args:
        speeches: (speaker, text) pairs, spoken one after the other; an empty speaker adds no voice tag.
        duration: seconds the whole speech takes.
    """
    cues: list[tuple[str, str]] = []
    for speaker, text in speeches:
        for piece in split_sentences(text, max_chars=CUE_CHARS) if text.strip() else []:
            cues.append((speaker, piece))
    total = sum(len(p) for _, p in cues) or 1
    lines = ["WEBVTT", ""]
    t = 0.0
    for i, (speaker, piece) in enumerate(cues, 1):
        end = duration if i == len(cues) else t + duration * len(piece) / total
        body = _escape(piece)
        if speaker:
            body = f"<v {_escape(speaker)}>{body}"
        lines += [str(i), f"{_stamp(t)} --> {_stamp(end)}", body, ""]
        t = end
    return "\n".join(lines)


def _stamp(seconds: float) -> str:
    ms = int(round(max(0.0, seconds) * 1000))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}.{ms:03d}"


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("-->", "--&gt;")
