"""TTS ``espeak``: the system eSpeak NG library through ctypes, with phoneme and word timings.

Needs the system package (``apt-get install espeak-ng``, which brings ``libespeak-ng1``); no Python
package. Robotic but tiny, fast and available in about a hundred languages.

libespeak-ng keeps its state per process, so every call into it holds one module lock; the
voice and rate are set again on each :meth:`EspeakTTS.synthesize`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import threading
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from ..errors import ConfigError, MissingDependencyError, StageError, TextError
from ..hookspecs import hookimpl
from ..stages import TTSBase, speakable_text
from ..text import MAX_SENTENCE_CHARS, check_scripts, language_scripts, split_sentences
from ..values import Audio, PhonemeTiming, VoiceProfile, WordTiming

log = logging.getLogger(__name__)

# espeak_AUDIO_OUTPUT, init options, synth flags, parameters, event types (speak_lib.h)
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INIT_PHONEME_EVENTS = 0x0001
_INIT_PHONEME_IPA = 0x0002
_INIT_DONT_EXIT = 0x8000
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_RATE, _VOLUME, _PITCH, _RANGE, _WORDGAP = 1, 2, 3, 4, 7
_EV_LIST_TERMINATED, _EV_WORD, _EV_SENTENCE, _EV_MARK, _EV_PLAY, _EV_END, _EV_MSG_TERMINATED, _EV_PHONEME = range(8)
_EE_OK = 0

#: How to install the system library (it is not a pip package).
SYSTEM_INSTALL = "apt-get install espeak-ng (Debian/Ubuntu), dnf install espeak-ng (Fedora), brew install espeak-ng (macOS)"

#: The espeak voice suggested for text in each writing system.
_PREFERRED_VOICE = {
    "Arab": "ar", "Hani": "cmn", "Cyrl": "ru", "Grek": "el", "Hebr": "he", "Deva": "hi", "Hang": "ko",
    "Hira": "ja", "Kana": "ja", "Thai": "th", "Geor": "ka", "Armn": "hy", "Beng": "bn", "Taml": "ta",
    "Telu": "te", "Knda": "kn", "Mlym": "ml", "Gujr": "gu", "Guru": "pa", "Orya": "or", "Sinh": "si",
    "Mymr": "my", "Ethi": "am",
}

_LIB_NAMES = ("libespeak-ng.so.1", "libespeak-ng.so", "libespeak-ng.1.dylib", "libespeak-ng.dylib", "libespeak-ng.dll")


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


class _Voice(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_char_p),
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))

_lock = threading.RLock()
_state: dict[str, Any] = {}  # the process's libespeak-ng handle: lib, sample_rate, callback, sink


def _find_library() -> str | None:
    found = ctypes.util.find_library("espeak-ng")
    return found


def _library() -> tuple[Any, int]:
    """Load and initialise libespeak-ng once per process (it is a process-wide singleton)."""
    with _lock:
        if "lib" in _state:
            return _state["lib"], _state["sample_rate"]
        lib = None
        candidates = [c for c in (_find_library(), *_LIB_NAMES) if c]
        for candidate in candidates:
            try:
                lib = ctypes.CDLL(candidate)
                break
            except OSError:
                continue
        if lib is None:
            raise MissingDependencyError(
                "espeak-ng", "espeak", "the espeak TTS (a system library, not a pip package)", install=SYSTEM_INSTALL
            ) from OSError(
                "libespeak-ng not found; install it with: apt-get install espeak-ng "
                "(macOS: brew install espeak-ng)"
            )
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetSynthCallback.argtypes = [_CALLBACK]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint, ctypes.c_uint,
            ctypes.POINTER(ctypes.c_uint), ctypes.c_void_p,
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Synchronize.restype = ctypes.c_int
        lib.espeak_ListVoices.argtypes = [ctypes.c_void_p]
        lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_Voice))
        rate = lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, None, _INIT_PHONEME_EVENTS | _INIT_PHONEME_IPA | _INIT_DONT_EXIT
        )
        if rate <= 0:
            raise StageError("tts", "espeak", "libespeak-ng failed to initialise (is espeak-ng-data installed?)")
        sink: dict[str, Any] = {"chunks": [], "events": []}

        def on_audio(wav, n, events) -> int:
            if n > 0 and wav:
                sink["chunks"].append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
            i = 0
            while events and events[i].type != _EV_LIST_TERMINATED:
                ev = events[i]
                if ev.type == _EV_PHONEME:
                    raw = bytes(ev.id.string).split(b"\0", 1)[0]
                    sink["events"].append(("phoneme", ev.audio_position, raw.decode("utf-8", "replace"), 0, 0))
                elif ev.type == _EV_WORD:
                    sink["events"].append(("word", ev.audio_position, "", ev.text_position, ev.length))
                elif ev.type in (_EV_END, _EV_MSG_TERMINATED):
                    sink["events"].append(("end", ev.audio_position, "", 0, 0))
                i += 1
            return 0

        callback = _CALLBACK(on_audio)
        lib.espeak_SetSynthCallback(callback)
        _state.update(lib=lib, sample_rate=rate, callback=callback, sink=sink)
        return lib, rate


class EspeakTTS(TTSBase):
    """eSpeak NG through its C library: phoneme (IPA) and word timings, ~100 languages, offline.

    Args:
        voice: an espeak voice or language name (``"en-us"``, ``"de"``, ``"fr"``...; see :meth:`voices`).
        rate: speaking rate in words per minute (80–450; espeak's default is 175).
        pitch: base pitch 0–100 (default 50).
        pitch_range: pitch variation 0–100 (default 50).
        volume: amplitude 0–200 (default 100).
        word_gap: extra pause between words, in units of 10 ms.
    """

    stage: ClassVar[str] = "tts"
    name: ClassVar[str] = "espeak"
    capabilities: ClassVar[frozenset[str]] = frozenset({"phonemes", "words", "offline", "stream"})

    def __init__(
        self,
        *,
        voice: str = "en-us",
        rate: int = 165,
        pitch: int = 50,
        pitch_range: int = 50,
        volume: int = 100,
        word_gap: int = 0,
    ) -> None:
        if not 80 <= rate <= 450:
            raise ConfigError(f"rate must be 80–450 words per minute, got {rate}")
        for label, value, hi in (("pitch", pitch, 100), ("pitch_range", pitch_range, 100), ("volume", volume, 200)):
            if not 0 <= value <= hi:
                raise ConfigError(f"{label} must be between 0 and {hi}, got {value}")
        self.voice, self.rate, self.pitch, self.pitch_range = voice, rate, pitch, pitch_range
        self.volume, self.word_gap = volume, word_gap
        self._sample_rate = 0

    def load(self) -> None:
        _, self._sample_rate = _library()

    def voices(self) -> Sequence[str]:
        """Identifiers of the installed espeak voices (language codes such as ``en-us``)."""
        lib, _ = _library()
        out: list[str] = []
        with _lock:
            voices = lib.espeak_ListVoices(None)
            i = 0
            while voices and voices[i]:
                v = voices[i].contents
                languages = v.languages or b""
                # the languages field is <priority byte><name>\0 ...; take the first name
                lang = languages[1:].split(b"\0", 1)[0].decode("utf-8", "replace") if languages else ""
                ident = (v.identifier or b"").decode("utf-8", "replace")
                out.append(lang or ident)
                i += 1
        return sorted(set(out))

    def _voice_name(self, voice: VoiceProfile | None) -> str:
        if voice is not None and (voice.voice or voice.language):
            return voice.voice or voice.language
        return self.voice

    def scripts(self, voice: VoiceProfile | None = None) -> frozenset[str] | None:
        """The writing systems the selected voice reads (its language's, plus Latin)."""
        return language_scripts(self._voice_name(voice))

    @classmethod
    def suggest_voices(cls, script: str) -> list[str]:
        """The espeak voice(s) that read ``script`` (the installed ones when the library is present)."""
        try:
            installed = cls().voices()
            missing = ""
        except MissingDependencyError:
            installed = sorted(_PREFERRED_VOICE.values())
            missing = f" after installing the espeak-ng system library ({SYSTEM_INSTALL.split(' (')[0]})"
        matching = [v for v in installed if script in (language_scripts(v) or ()) and script != "Latn"]
        matching = [v for v in matching if v.split("-")[0] not in ("fa", "cmn") or "latn" not in v]
        if not matching:
            return []
        best = _PREFERRED_VOICE.get(script)
        first = best if best in matching else matching[0]
        others = [v for v in matching if v != first][:4]
        also = f"; other espeak voices for it: {', '.join(others)}" if others else ""
        return [f"tts=('espeak', {{'voice': '{first}'}}) (CLI: --tts espeak --set tts.voice={first}){missing}{also}"]

    def synthesize(self, text: str, *, voice: VoiceProfile | None = None) -> Audio:
        """Speak ``text``; ``voice.voice`` or ``voice.language`` picks another espeak voice.

        Long text is synthesised in pieces of at most :data:`MAX_SENTENCE_CHARS` characters
        (:func:`~talkinghead.text.split_sentences`); phoneme and word timings run on continuously.
        """
        text = speakable_text(text, require_words=True)
        if voice is not None and voice.reference is not None:
            log.warning("tts espeak cannot clone a voice; the reference audio is ignored")
        name = self._voice_name(voice)
        check_scripts(text, self.scripts(voice), voice=f"the espeak voice {name!r}",
                      hint="choose an espeak voice for that language (talkinghead voices --tts espeak)")
        pieces = [self._synthesize_piece(piece, name) for piece in split_sentences(text, MAX_SENTENCE_CHARS)]
        pieces = [p for p in pieces if p is not None]
        if not pieces:
            raise TextError(f"espeak produced no speech for {text!r}")
        return Audio.concatenate(pieces)

    def _synthesize_piece(self, text: str, name: str) -> Audio | None:
        lib, rate = _library()
        data = text.encode("utf-8")
        with _lock:
            sink = _state["sink"]
            sink["chunks"].clear()
            sink["events"].clear()
            if lib.espeak_SetVoiceByName(name.encode()) != _EE_OK:
                raise ConfigError(f"espeak has no voice {name!r}; `talkinghead voices --tts espeak` lists them")
            for param, value in ((_RATE, self.rate), (_PITCH, self.pitch), (_RANGE, self.pitch_range),
                                 (_VOLUME, self.volume), (_WORDGAP, self.word_gap)):
                lib.espeak_SetParameter(param, int(value), 0)
            buf = ctypes.create_string_buffer(data)
            err = lib.espeak_Synth(buf, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
            if err != _EE_OK:
                raise StageError("tts", self.name, f"espeak_Synth failed with code {err}")
            lib.espeak_Synchronize()
            chunks = list(sink["chunks"])
            events = list(sink["events"])
            sink["chunks"].clear()
            sink["events"].clear()
        if not chunks:
            return None
        samples = np.concatenate(chunks).astype(np.float32) / 32768.0
        duration = len(samples) / rate
        return Audio(samples, rate, phonemes=_phonemes(events, duration), words=_words(events, data, duration))


def _phonemes(events: list[tuple], duration: float) -> tuple[PhonemeTiming, ...]:
    """Phoneme events carry start times (ms); each lasts until the next one starts."""
    marks = [(ms / 1000.0, name) for kind, ms, name, _, _ in events if kind == "phoneme"]
    out = []
    t_prev = 0.0
    for i, (t, name) in enumerate(marks):
        t = min(max(t, t_prev), duration)
        end = marks[i + 1][0] if i + 1 < len(marks) else duration
        end = min(max(end, t), duration)
        out.append(PhonemeTiming(name if name.strip() else " ", t, end))
        t_prev = t
    if out and out[0].start > 0:
        out.insert(0, PhonemeTiming(" ", 0.0, out[0].start))
    return tuple(p for p in out if p.end > p.start)


def _words(events: list[tuple], data: bytes, duration: float) -> tuple[WordTiming, ...]:
    """Word events give the word's start time and its 1-based character position in the text."""
    text = data.decode("utf-8")
    # a word event without text (length 0: espeak emits one at pauses after some voices, e.g. cmn,
    # have been used in the process) is not a word
    starts = [(ms / 1000.0, pos, length) for kind, ms, _, pos, length in events if kind == "word" and length > 0]
    ends = [ms / 1000.0 for kind, ms, *_ in events if kind == "end"]
    out = []
    for i, (t, pos, length) in enumerate(starts):
        word = text[max(pos - 1, 0) : max(pos - 1, 0) + length].strip() or "?"
        end = starts[i + 1][0] if i + 1 < len(starts) else (max(ends) if ends else duration)
        out.append(WordTiming(word, min(t, duration), min(max(end, t), duration)))
    return tuple(out)


@hookimpl
def register_backends(register) -> None:
    """This module's backend registers itself, exactly as a third-party plug-in does."""
    register(EspeakTTS)
