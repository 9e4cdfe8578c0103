"""The ``viseme`` animator: the embedded, offline default."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ...errors import ConfigError
from ...expression import EMOTIONS, EmotionSpec, Expression, ExpressionTrack, resolve_emotion
from ...stages import BackendBase, ProgressCallback, frame_count
from ...values import Audio, Face, FrameChunk, Portrait
from .bankable import VisemeBankSupport

log = logging.getLogger(__name__)

__all__ = ["VisemeAnimator", "PreparedPortrait"]

#: Head regions of at least this many pixels are rendered on two threads by default (measured:
#: +15–35 % frames/s for close-ups at 512², nothing or a loss below ~50,000 pixels).
_THREADED_ROI = 100_000


@dataclass(frozen=True, eq=False)
class PreparedPortrait:
    """What :meth:`VisemeAnimator.prepare` computes once per portrait."""

    image: np.ndarray
    face: Face
    fields: Any  # fields.FieldBank
    look: Any  # appearance.Appearance


class VisemeAnimator(VisemeBankSupport, BackendBase):
    """Animates the portrait itself with precomputed warp fields driven by visemes and loudness.

    It needs no weights beyond mediapipe's bundled face models and runs far faster than real time
    on a CPU. Mouth shapes follow the TTS phoneme timings when present, otherwise the sound; the
    head moves with the prosody; the expression follows ``emotion``.

    Args:
        seed: seeds blinks, saccades, head motion and asymmetry; the same seed gives the same frames.
        mouth_scale: how wide the mouth opens (1.0 ≈ 24 % of the mouth width at full loudness).
        blink_rate: blinks per minute (0 disables blinking).
        head_motion: scale of the head motion (0 keeps the head still).
        gaze: scale of the eyes' saccades (0 keeps the eyes still).
        emotion: ``"neutral"``, ``"happy"``, ``"sad"``, ``"concerned"``, ``"surprised"``,
            ``"auto"`` (from the sentiment of the spoken text, ``audio.text``), an
            :class:`~talkinghead.expression.Expression` or an
            :class:`~talkinghead.expression.ExpressionTrack`. ``animate(..., emotion=...)``
            overrides it for one clip.
        chunk_size: frames per yielded :class:`FrameChunk`.
        use_phonemes: use the audio's phoneme timings when present (False: sound only).
        max_faces: most faces the detector reports (for ``multiple_faces``).
        landmarks: face-mesh backend: ``"auto"`` (mediapipe when it runs, else LiteRT), ``"mediapipe"``
            or ``"litert"`` (see :mod:`talkinghead.face.mesh`).
        render_threads: threads that render the frames of a clip (each chunk is split between
            them; most of a frame's work is OpenCV, which runs outside the GIL). ``None``: two
            for a large head region (a close-up at 512², over 100,000 pixels warped per frame)
            on a machine with two CPUs or more, else one (on a small region, OpenCV's own threads
            already keep both CPUs busy and a second render thread only adds overhead). The
            frames are the same for any number.
    """

    stage: ClassVar[str] = "animator"
    name: ClassVar[str] = "viseme"
    capabilities: ClassVar[frozenset[str]] = frozenset({"offline", "cpu", "phonemes", "emotion", "stream", "bankable"})

    def __init__(
        self,
        *,
        seed: int = 0,
        mouth_scale: float = 1.0,
        blink_rate: float = 15.0,
        head_motion: float = 1.0,
        gaze: float = 1.0,
        emotion: EmotionSpec = "auto",
        chunk_size: int = 16,
        use_phonemes: bool = True,
        max_faces: int = 4,
        landmarks: str = "auto",
        render_threads: int | None = None,
    ) -> None:
        if not 0.0 <= float(mouth_scale) <= 2.0:
            raise ConfigError(f"mouth_scale must be between 0 and 2, got {mouth_scale}")
        if not 0.0 <= float(blink_rate) <= 60.0:
            raise ConfigError(f"blink_rate must be between 0 and 60 blinks per minute, got {blink_rate}")
        if not 0.0 <= float(head_motion) <= 3.0:
            raise ConfigError(f"head_motion must be between 0 and 3, got {head_motion}")
        if not 0.0 <= float(gaze) <= 3.0:
            raise ConfigError(f"gaze must be between 0 and 3, got {gaze}")
        _check_emotion(emotion)
        if int(chunk_size) < 1:
            raise ConfigError(f"chunk_size must be at least 1, got {chunk_size}")
        if int(max_faces) < 1:
            raise ConfigError(f"max_faces must be at least 1, got {max_faces}")
        if render_threads is not None and not 1 <= int(render_threads) <= 64:
            raise ConfigError(f"render_threads must be between 1 and 64, got {render_threads}")
        self.seed = int(seed)
        self.mouth_scale = float(mouth_scale)
        self.blink_rate = float(blink_rate)
        self.head_motion = float(head_motion)
        self.gaze = float(gaze)
        self.emotion = emotion
        self.chunk_size = int(chunk_size)
        self.use_phonemes = bool(use_phonemes)
        self.max_faces = int(max_faces)
        self.render_threads = None if render_threads is None else int(render_threads)
        from ...face.mesh import MESH_BACKENDS

        if landmarks not in MESH_BACKENDS:
            raise ConfigError(f"landmarks must be one of {', '.join(MESH_BACKENDS)}; got {landmarks!r}")
        self.landmarks = landmarks
        self._detector = None

    def load(self) -> None:
        """Load the face detector and face mesh (mediapipe's or LiteRT's bundled models)."""
        if self._detector is not None:
            return
        from ...face.landmarks import MeshLandmarks

        detector = MeshLandmarks(self.landmarks, max_faces=self.max_faces)
        detector.load()  # raises MissingDependencyError naming the extra when no backend can run
        self._detector = detector

    def close(self) -> None:
        if self._detector is not None:
            self._detector.close()
        self._detector = None

    def prepare(self, portrait: Portrait, *, multiple_faces: str = "largest") -> PreparedPortrait:
        """Find the face, measure its landmarks and build its deformation fields.

        Raises:
            NoFaceError, MultipleFacesError, FaceTooSmallError: the portrait cannot be animated.
        """
        self.load()
        from .appearance import Appearance
        from .fields import FaceGeometry, build_fields

        face = self._detector.find(portrait.image, multiple_faces=multiple_faces)
        geometry = FaceGeometry.from_landmarks(face.landmarks)
        look = Appearance.measure(portrait.image, face.landmarks, geometry.teeth_visible)
        # Openings wider than the default need larger fields; narrower ones just scale the drive.
        bank = build_fields(geometry, portrait.size, jaw_scale=max(1.0, self.mouth_scale))
        log.debug("viseme: face %s, head ROI %s, jaw %.1f px, blur %.2f px", face.box, bank.roi, bank.jaw_px, look.blur)
        return PreparedPortrait(portrait.image, face, bank, look)

    def drive(
        self,
        prepared: PreparedPortrait,
        audio: Audio,
        *,
        fps: float,
        emotion: EmotionSpec = None,
        first_frame: int = 0,
        n: int | None = None,
    ):
        """The per-frame drive (:class:`~.timeline.Drive`) this animator renders for ``audio``.

        ``emotion`` (default: the animator's) is resolved on the clip's clock; a track given for
        a stream is on the stream's clock, with ``first_frame`` the global index of the audio's
        first frame.
        """
        from .timeline import compute_drive

        spec = self.emotion if emotion is None else emotion
        _check_emotion(spec)
        track = resolve_emotion(spec, audio=audio)
        if not isinstance(spec, ExpressionTrack) and first_frame:
            track = track.shifted(first_frame / fps)
        return compute_drive(
            audio,
            fps,
            n,
            first_frame=first_frame,
            seed=self.seed,
            mouth_scale=self.mouth_scale / prepared.fields.jaw_scale,
            blink_rate=self.blink_rate,
            head_motion=self.head_motion,
            gaze=self.gaze,
            use_phonemes=self.use_phonemes,
            expression=track,
        )

    def animate(
        self,
        prepared: PreparedPortrait,
        audio: Audio,
        *,
        fps: float,
        progress: ProgressCallback | None = None,
        emotion: EmotionSpec = None,
    ) -> Iterator[FrameChunk]:
        """Yield ``frame_count(audio.duration, fps)`` frames in chunks of ``chunk_size``.

        Args:
            emotion: this clip's expression (overrides the animator's ``emotion``); ``"auto"``
                reads ``audio.text``.
        """
        if not isinstance(prepared, PreparedPortrait):
            raise ConfigError("animate() needs the result of this animator's prepare()")
        n = frame_count(audio.duration, fps)
        drive = self.drive(prepared, audio, fps=fps, emotion=emotion, n=n)
        yield from self.render(prepared, drive, progress=progress)

    def threads_for(self, prepared: PreparedPortrait) -> int:
        """How many threads render this portrait's frames (``render_threads``, or its automatic choice)."""
        if self.render_threads is not None:
            return self.render_threads
        x0, y0, x1, y1 = prepared.fields.roi
        return 2 if (x1 - x0) * (y1 - y0) >= _THREADED_ROI and (os.cpu_count() or 1) >= 2 else 1

    def render(
        self, prepared: PreparedPortrait, drive, *, progress: ProgressCallback | None = None
    ) -> Iterator[FrameChunk]:
        """Render the frames of a drive (of a clip, or of a window of a stream), in chunks.

        Chunk ``start`` values are the drive's global frame indices.
        """
        from .render import FrameRenderer

        image, n = prepared.image, len(drive)
        # One renderer per thread: a renderer holds its frame's working buffer (the twins share the
        # per-portrait tables).
        workers = max(1, min(self.threads_for(prepared), self.chunk_size))
        first = FrameRenderer(image, prepared.fields, prepared.look, seed=self.seed)
        renderers = [first] + [first.twin() for _ in range(workers - 1)]

        def draw(renderer: FrameRenderer, frames: np.ndarray, start: int, part: range) -> None:
            for k in part:
                frames[k] = image
                renderer.render(frames[k], drive.values[start + k])

        pool = ThreadPoolExecutor(workers - 1, thread_name_prefix="viseme-render") if workers > 1 else None
        try:
            for start in range(0, n, self.chunk_size):
                stop = min(n, start + self.chunk_size)
                frames = np.empty((stop - start,) + image.shape, np.uint8)
                # Contiguous parts, one per renderer; this thread draws the first.
                bounds = np.linspace(0, stop - start, workers + 1).round().astype(int)
                parts = [range(bounds[i], bounds[i + 1]) for i in range(workers)]
                futures = (
                    [pool.submit(draw, renderers[i], frames, start, parts[i]) for i in range(1, workers)]
                    if pool
                    else []
                )
                draw(renderers[0], frames, start, parts[0])
                for f in futures:
                    f.result()
                if progress is not None:
                    progress(stop, n)
                yield FrameChunk(frames, drive.first_frame + start)
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)

    def open_stream(
        self,
        prepared: PreparedPortrait,
        *,
        fps: Any,
        sample_rate: int,
        first_frame: int = 0,
        emotion: EmotionSpec = None,
    ) -> Any:
        """A live stream of the portrait (:class:`.stream.VisemeStream`): the drive over sliding windows,
        idle motion between speech; per-stream state lives in the returned object."""
        from fractions import Fraction

        from .stream import VisemeStream

        if not isinstance(prepared, PreparedPortrait):
            raise ConfigError("open_stream() needs the result of this animator's prepare()")
        if emotion is not None:
            _check_emotion(emotion)
        return VisemeStream(
            self, prepared, fps=Fraction(fps), sample_rate=sample_rate, first_frame=first_frame, emotion=emotion
        )


def _check_emotion(spec: EmotionSpec) -> None:
    if spec is None or isinstance(spec, (Expression, ExpressionTrack)):
        return
    if not isinstance(spec, str) or (spec not in EMOTIONS and spec != "auto"):
        raise ConfigError(
            f"emotion must be one of {', '.join(EMOTIONS)} or 'auto' (or an Expression / ExpressionTrack), got {spec!r}"
        )
