"""Voice activity in the user's audio: when a turn starts (barge-in) and when it ends.

:class:`SileroVAD` runs the Silero VAD model that ships inside the ``faster-whisper`` package (no
download), :class:`EnergyVAD` a plain loudness gate (no model; for tests and quiet rooms). Both are
stateless and shared; the per-stream state (model memory, the utterance being heard) lives in
:class:`VoiceActivity`.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ConfigError, MissingDependencyError, ModelLoadError
from ..values import Audio

log = logging.getLogger(__name__)

__all__ = ["EnergyVAD", "SileroVAD", "VADEvent", "VoiceActivity", "make_vad"]

#: Sample rate and window of the detectors (Silero's native 16 kHz / 32 ms).
VAD_RATE = 16000
WINDOW = 512


class SileroVAD:
    """The Silero VAD (v6 ONNX) bundled with faster-whisper: speech probability per 32 ms window.

    Args:
        path: the ``.onnx`` file (default: the one inside the installed ``faster_whisper`` package).
    """

    name = "silero"
    _CONTEXT = 64

    def __init__(self, path: str | os.PathLike | None = None) -> None:
        self.path = path
        self._session: Any = None

    def load(self) -> SileroVAD:
        if self._session is not None:
            return self
        try:
            import onnxruntime
        except ImportError as exc:
            raise MissingDependencyError("onnxruntime", "asr", "the Silero voice-activity detector") from exc
        path = self.path
        if path is None:
            try:
                from faster_whisper.utils import get_assets_path
            except ImportError as exc:
                raise MissingDependencyError("faster-whisper", "asr", "the bundled Silero VAD model") from exc
            path = os.path.join(get_assets_path(), "silero_vad_v6.onnx")
        opts = onnxruntime.SessionOptions()
        opts.inter_op_num_threads = 1
        opts.intra_op_num_threads = 1
        opts.log_severity_level = 4
        try:
            self._session = onnxruntime.InferenceSession(os.fspath(path), providers=["CPUExecutionProvider"], sess_options=opts)
        except Exception as exc:
            raise ModelLoadError(f"could not load the Silero VAD model {path}: {exc}") from exc
        return self

    def new_state(self) -> dict[str, np.ndarray]:
        """Fresh per-stream memory of the model."""
        return {
            "h": np.zeros((1, 1, 128), np.float32),
            "c": np.zeros((1, 1, 128), np.float32),
            "context": np.zeros(self._CONTEXT, np.float32),
        }

    def probabilities(self, windows: np.ndarray, state: dict[str, np.ndarray]) -> np.ndarray:
        """Speech probability of each (512,) window in order, updating ``state``."""
        self.load()
        out = np.empty(len(windows), np.float32)
        for i, w in enumerate(windows):
            x = np.concatenate([state["context"], w.astype(np.float32)])[None]
            prob, state["h"], state["c"] = self._session.run(None, {"input": x, "h": state["h"], "c": state["c"]})
            out[i] = float(np.asarray(prob).reshape(-1)[0])
            state["context"] = w[-self._CONTEXT :].astype(np.float32)
        return out


class EnergyVAD:
    """Speech where the window's RMS level is above ``threshold_dbfs`` (no model)."""

    name = "energy"

    def __init__(self, threshold_dbfs: float = -40.0) -> None:
        self.threshold_dbfs = float(threshold_dbfs)

    def load(self) -> EnergyVAD:
        return self

    def new_state(self) -> dict[str, Any]:
        return {}

    def probabilities(self, windows: np.ndarray, state: dict[str, Any]) -> np.ndarray:
        rms = np.sqrt(np.mean(np.asarray(windows, np.float64) ** 2, axis=1))
        db = 20 * np.log10(np.maximum(rms, 1e-9))
        return (db >= self.threshold_dbfs).astype(np.float32)


def make_vad(vad: Any) -> Any:
    """``"silero"``, ``"energy"`` or a detector object (with ``new_state`` and ``probabilities``)."""
    if vad == "silero":
        return SileroVAD().load()
    if vad == "energy":
        return EnergyVAD()
    if hasattr(vad, "probabilities") and hasattr(vad, "new_state"):
        return vad
    raise ConfigError(f"vad must be 'silero', 'energy' or a detector object, got {vad!r}")


@dataclass(frozen=True)
class VADEvent:
    """``kind="start"``: speech began (``audio`` None); ``kind="end"``: the utterance, with pre-roll."""

    kind: str
    sample: int  # position in the 16 kHz input where it was decided
    audio: Audio | None = None


class VoiceActivity:
    """Turns a stream of 16 kHz audio into speech start/end events (per stream state).

    Args:
        model: a :class:`SileroVAD` or :class:`EnergyVAD` (shared).
        threshold: speech probability that counts as speech.
        min_speech_ms: speech needed before a start is declared (ignores clicks and coughs).
        min_silence_ms: silence that ends an utterance.
        pre_roll_ms: audio kept from before the start, so the first word is not cut.
        max_speech_s: an utterance this long ends even without a pause.
    """

    def __init__(
        self,
        model: Any,
        *,
        threshold: float = 0.5,
        min_speech_ms: float = 150,
        min_silence_ms: float = 500,
        pre_roll_ms: float = 300,
        max_speech_s: float = 30.0,
    ) -> None:
        if not 0 < threshold < 1:
            raise ConfigError(f"vad threshold must be between 0 and 1, got {threshold}")
        self.model = model
        self.threshold = float(threshold)
        ms = 1000 * WINDOW / VAD_RATE
        self._start_windows = max(1, int(np.ceil(min_speech_ms / ms)))
        self._end_windows = max(1, int(np.ceil(min_silence_ms / ms)))
        self._max_windows = max(1, int(max_speech_s * 1000 / ms))
        self._pre = deque(maxlen=max(1, int(np.ceil(pre_roll_ms / ms))) + self._start_windows)
        self._state = model.new_state()
        self._rest = np.zeros(0, np.float32)
        self._pos = 0
        self.speaking = False
        self._run = 0
        self._utterance: list[np.ndarray] = []

    def push(self, samples: np.ndarray) -> list[VADEvent]:
        """Add 16 kHz samples; return the events they complete."""
        x = np.concatenate([self._rest, np.asarray(samples, np.float32).reshape(-1)])
        n = len(x) // WINDOW
        self._rest = x[n * WINDOW :]
        if n == 0:
            return []
        windows = x[: n * WINDOW].reshape(n, WINDOW)
        probs = self.model.probabilities(windows, self._state)
        events: list[VADEvent] = []
        for w, p in zip(windows, probs, strict=True):
            self._pos += WINDOW
            if not self.speaking:
                self._pre.append(w)
                self._run = self._run + 1 if p >= self.threshold else 0
                if self._run >= self._start_windows:
                    self.speaking, self._run = True, 0
                    self._utterance = list(self._pre)
                    self._pre.clear()
                    events.append(VADEvent("start", self._pos))
            else:
                self._utterance.append(w)
                self._run = self._run + 1 if p < self.threshold - 0.15 else 0
                if self._run >= self._end_windows or len(self._utterance) >= self._max_windows:
                    events.append(self._end())
        return events

    def flush(self) -> list[VADEvent]:
        """End of input: close an utterance in progress."""
        return [self._end()] if self.speaking else []

    def reset(self) -> None:
        """Forget everything (model memory, the utterance in progress)."""
        self._state = self.model.new_state()
        self._rest = np.zeros(0, np.float32)
        self._pre.clear()
        self.speaking, self._run, self._utterance = False, 0, []

    def _end(self) -> VADEvent:
        audio = np.concatenate(self._utterance) if self._utterance else np.zeros(0, np.float32)
        self.speaking, self._run, self._utterance = False, 0, []
        return VADEvent("end", self._pos, Audio(audio, VAD_RATE))
