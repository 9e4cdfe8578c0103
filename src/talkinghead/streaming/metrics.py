"""Latency and throughput of one conversation turn of a live stream.

Wall-clock durations are measured with ``time.perf_counter`` from the start of the turn (the moment
the question is complete: typed text given, or the user's audio ended); stream quantities (frames,
samples, drift) come from the stream's own counters.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

__all__ = ["TurnMetrics"]


@dataclass
class TurnMetrics:
    """Measurements of one turn (None where a step did not happen).

    Attributes:
        turn: turn id.
        cold: models were loaded or the portrait prepared during this turn.
        asr_s: speech recognition time.
        llm_first_token_s: from the LLM request to its first text piece.
        llm_first_sentence_s: from the LLM request to the first complete sentence (the LLM's own
            latency, reported apart from the pipeline's).
        tts_first_s: synthesis time of the first sentence.
        first_audio_s: turn start → first speech audio queued for the stream.
        first_frame_s: turn start → first frame of the answer emitted.
        frames: frames of speech emitted for this turn.
        samples: audio samples emitted with them.
        samples_per_frame: of the stream.
        render_s: time spent rendering those frames (animator + enhancer).
        speech_wall_s: wall time from the first to the last speech chunk of the turn.
        late_frames: frames emitted after their real-time deadline (paced streams).
        barge_in_ms: stream time from an interruption to the first idle frame.
    """

    turn: int
    cold: bool = False
    asr_s: float | None = None
    llm_first_token_s: float | None = None
    llm_first_sentence_s: float | None = None
    tts_first_s: float | None = None
    first_audio_s: float | None = None
    first_frame_s: float | None = None
    frames: int = 0
    samples: int = 0
    samples_per_frame: int = 0
    fps: float = 0.0
    render_s: float = 0.0
    speech_wall_s: float = 0.0
    late_frames: int = 0
    barge_in_ms: float | None = None

    @property
    def av_drift_samples(self) -> int:
        """Audio samples emitted minus the samples the emitted frames cover (0 by construction)."""
        return self.samples - self.frames * self.samples_per_frame

    @property
    def render_fps(self) -> float | None:
        """Frames rendered per second of rendering time (what the renderer sustains)."""
        return self.frames / self.render_s if self.render_s > 0 else None

    @property
    def steady_fps(self) -> float | None:
        """Frames per wall second from the first to the last speech chunk (delivery rate)."""
        return self.frames / self.speech_wall_s if self.speech_wall_s > 0 and self.frames > 1 else None

    @property
    def rtf(self) -> float | None:
        """Real-time factor of rendering: render time / stream time (below 1 keeps up)."""
        if not self.frames or not self.fps:
            return None
        return self.render_s / (self.frames / self.fps)

    @property
    def pipeline_first_frame_s(self) -> float | None:
        """First frame latency without the LLM's own first-sentence time."""
        if self.first_frame_s is None:
            return None
        return self.first_frame_s - (self.llm_first_sentence_s or 0.0)

    def as_dict(self) -> dict:
        """All fields and derived figures, rounded for logs and JSON."""
        out = asdict(self)
        out.update(
            av_drift_samples=self.av_drift_samples,
            render_fps=self.render_fps,
            steady_fps=self.steady_fps,
            rtf=self.rtf,
            pipeline_first_frame_s=self.pipeline_first_frame_s,
        )
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in out.items()}
