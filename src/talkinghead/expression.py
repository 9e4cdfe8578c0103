"""Facial expression targets: named emotions, expressions read from text, and smooth tracks over time.

The one home of "what the face should express". Animators that can show emotion (the ``viseme``
animator) take an ``emotion=`` option that is one of :data:`EMOTIONS`, ``"auto"``, an
:class:`Expression` or an :class:`ExpressionTrack`; a live conversation uses
:func:`expression_from_text` on the user's words to set the listening expression.

* :class:`Expression` — how happy, sad, concerned and surprised the face looks, each in [0, 1]
  (all zero: neutral).
* :func:`expression_from_text` — the expression of a piece of text, from the VADER sentiment
  lexicon (offline; the ``vaderSentiment`` package) plus a few cue words; ``listener=True`` gives
  the empathetic face of someone *hearing* the text (a concerned look for bad news, a smile for
  good news).
* :class:`ExpressionTrack` — expressions placed in time (seconds); :meth:`ExpressionTrack.at`
  eases from one to the next (smoothstep over ``transition_s``), so a clip never jumps between
  expressions. A track is a pure function of time: a stream can evaluate it over any window.
* :func:`expression_track_for_speech` — the ``auto`` track of a spoken clip: one expression per
  sentence of its text, each starting where that sentence is spoken.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from functools import lru_cache
from typing import TYPE_CHECKING, Literal, Union

import numpy as np

from .errors import ConfigError, MissingDependencyError

if TYPE_CHECKING:  # pragma: no cover
    from .values import Audio

__all__ = [
    "EMOTIONS",
    "Expression",
    "ExpressionKey",
    "ExpressionTrack",
    "EmotionName",
    "EmotionSpec",
    "expression_from_text",
    "expression_track_for_speech",
    "resolve_emotion",
]

#: The named emotions (``"auto"`` is accepted where a clip's text is known).
EMOTIONS = ("neutral", "happy", "sad", "concerned", "surprised")

# Cue words that VADER's single valence number cannot separate.
_SAD = re.compile(
    r"\b(sad|sadly|sorrow|sorry|grief|griev\w*|mourn\w*|loss|lost|died|dead|death|passed away|"
    r"miss(ed|ing)? (you|him|her|them)|cry|crying|cried|tears|lonely|alone|heartbr\w*|depress\w*|"
    r"unhappy|miserable|tragic|tragedy|disappoint\w*)\b",
    re.I,
)
_CONCERN = re.compile(
    r"\b(worr\w*|concern\w*|afraid|fear\w*|scar\w*|anxious|anxiety|nervous|careful|danger\w*|risk\w*|problem\w*|"
    r"trouble\w*|wrong|hurt\w*|pain\w*|sick|ill|stress\w*|difficult|struggl\w*|unsure|uncertain|warn\w*|emergency)\b",
    re.I,
)
_SURPRISE = re.compile(
    r"(\b(wow|whoa|woah|oh my|omg|no way|unbelievable|incredible|astonish\w*|amaz\w*|surpris\w*|really\?|"
    r"what\?|can't believe|cannot believe)\b|\?!|!\?)",
    re.I,
)


@dataclass(frozen=True)
class Expression:
    """An expression target: the weight of each emotion in [0, 1] (all zero is neutral).

    Weights may be combined (a happy surprise is ``Expression(happy=0.7, surprised=0.6)``).
    """

    happy: float = 0.0
    sad: float = 0.0
    concerned: float = 0.0
    surprised: float = 0.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = float(getattr(self, f.name))
            if not np.isfinite(value) or not 0.0 <= value <= 1.0:
                raise ConfigError(f"Expression.{f.name} must be between 0 and 1, got {getattr(self, f.name)!r}")
            object.__setattr__(self, f.name, value)

    @classmethod
    def named(cls, name: str, intensity: float = 1.0) -> Expression:
        """The expression of a named emotion (one of :data:`EMOTIONS`) at ``intensity``."""
        if name not in EMOTIONS:
            raise ConfigError(f"unknown emotion {name!r}; choose one of {', '.join(EMOTIONS)} (or 'auto')")
        if name == "neutral":
            return cls()
        return cls(**{name: float(np.clip(intensity, 0.0, 1.0))})

    def as_array(self) -> np.ndarray:
        """The weights as an array in the order of ``EMOTIONS[1:]`` (happy, sad, concerned, surprised)."""
        return np.array([self.happy, self.sad, self.concerned, self.surprised])

    @property
    def dominant(self) -> str:
        """The strongest emotion's name, or ``"neutral"`` when every weight is below 0.15."""
        w = self.as_array()
        return "neutral" if w.max() < 0.15 else EMOTIONS[1 + int(w.argmax())]


@dataclass(frozen=True)
class ExpressionKey:
    """From ``time`` (seconds) on, the face eases towards ``expression``."""

    time: float
    expression: Expression


@dataclass(frozen=True)
class ExpressionTrack:
    """Expressions placed in time; the face eases from each to the next over ``transition_s``.

    The value at time *t* depends only on the keys at or before *t* (and is the first key's
    expression before it), so any window of a stream can be evaluated on its own.
    """

    keys: tuple[ExpressionKey, ...] = ()
    transition_s: float = 0.6

    def __post_init__(self) -> None:
        keys = tuple(sorted(self.keys, key=lambda k: k.time))
        object.__setattr__(self, "keys", keys)
        if not float(self.transition_s) > 0:
            raise ConfigError(f"transition_s must be positive, got {self.transition_s}")

    @classmethod
    def constant(cls, expression: Expression) -> ExpressionTrack:
        """The same expression at every time."""
        return cls((ExpressionKey(0.0, expression),))

    def shifted(self, seconds: float) -> ExpressionTrack:
        """The same track with every key ``seconds`` later (place a clip's track on a stream's clock)."""
        return ExpressionTrack(
            tuple(ExpressionKey(k.time + seconds, k.expression) for k in self.keys), self.transition_s
        )

    def then(self, time: float, expression: Expression) -> ExpressionTrack:
        """A new track with ``expression`` starting at ``time`` (seconds)."""
        return ExpressionTrack(self.keys + (ExpressionKey(float(time), expression),), self.transition_s)

    def at(self, times: np.ndarray) -> np.ndarray:
        """Expression weights (len(times), 4) at ``times`` (seconds), eased between keys."""
        times = np.asarray(times, np.float64)
        out = np.zeros((times.size, 4))
        if not self.keys:
            return out
        out[:] = self.keys[0].expression.as_array()
        for key in self.keys[1:]:
            s = np.clip((times - key.time) / self.transition_s, 0.0, 1.0)
            s = (s * s * (3.0 - 2.0 * s))[:, None]
            out = out * (1.0 - s) + key.expression.as_array()[None, :] * s
        return out


EmotionName = Literal["auto", "neutral", "happy", "sad", "concerned", "surprised"]
"""The names ``emotion=`` accepts (:data:`EMOTIONS` and ``"auto"``)."""

EmotionSpec = Union[EmotionName, Expression, ExpressionTrack, None]
"""What ``emotion=`` accepts: a name from :data:`EMOTIONS`, ``"auto"``, an Expression or a track."""


# British spellings VADER's lexicon lacks while it has the American word ("favourite" scored 0, so
# "my favourite planet" got no smile and "my favorite planet" did): -or- stems that British spells
# -our-, except before the endings where British keeps -or- too (glamorous, honorary, humorist).
_OUR_STEMS = re.compile(r"(favor|honor|humor|color|behavior|neighbor|labor|flavor|harbor|rumor|vigor|valor|splendor|"
                        r"glamor|candor|ardor|fervor|savor|clamor|rancor|endeavor|odor|parlor|savior)"
                        r"(?!ous|os|ar|ari|if|is|al|es|iz|at)")
_RE_WORDS = {"somber": "sombre"}  # the lexicon's one -er word that British spells -re


def _british_variants(lexicon: dict[str, float]) -> dict[str, float]:
    """The British spelling of each American word of ``lexicon`` that has none, with the same valence."""
    out: dict[str, float] = {}
    for word, valence in lexicon.items():
        british = _RE_WORDS.get(word) or _OUR_STEMS.sub(lambda m: m.group(1)[:-1] + "ur", word)
        if british != word and british not in lexicon:
            out[british] = valence
    return out


@lru_cache(maxsize=1)
def _analyzer():
    """VADER's analyzer (reads its lexicon once per process; stateless and read-only afterwards),
    with British spellings of its American words."""
    try:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
    except ImportError as exc:
        raise MissingDependencyError("vaderSentiment", "viseme", "expressions from text (emotion='auto')") from exc
    analyzer = SentimentIntensityAnalyzer()
    analyzer.lexicon.update(_british_variants(analyzer.lexicon))
    return analyzer


def expression_from_text(text: str, *, listener: bool = False) -> Expression:
    """The expression that fits ``text``, from its sentiment (VADER, offline) and cue words.

    Positive text gives ``happy`` (stronger for stronger sentiment); negative text gives ``sad``
    when it speaks of loss or sorrow, ``concerned`` otherwise; exclamations of surprise ("wow",
    "really?!") add ``surprised``. Neutral text gives the neutral expression.

    Args:
        text: what is said.
        listener: the face of someone *hearing* the text rather than saying it: bad news gives a
            concerned (not sad) look, good news a smile, both a little softer.

    Raises:
        MissingDependencyError: ``vaderSentiment`` is not installed (``pip install 'talkinghead[viseme]'``).
    """
    text = " ".join(str(text).split())
    if not text:
        return Expression()
    compound = float(_analyzer().polarity_scores(text)["compound"])
    happy = sad = concerned = surprised = 0.0
    if _SURPRISE.search(text):
        surprised = 0.7 if compound > -0.3 else 0.4
    if compound >= 0.15:
        happy = min(1.0, (compound - 0.05) / 0.6)
    elif compound <= -0.15:
        strength = min(1.0, (-compound - 0.05) / 0.6)
        n_sad, n_concern = len(_SAD.findall(text)), len(_CONCERN.findall(text))
        if n_sad > n_concern or (n_sad == n_concern and compound <= -0.6):
            sad = strength
        else:
            concerned = strength
    elif _CONCERN.search(text):
        concerned = 0.35
    if listener:
        concerned = max(concerned, 0.8 * sad)
        sad = 0.3 * sad
        happy, surprised = 0.8 * happy, 0.8 * surprised
    return Expression(happy=happy, sad=sad, concerned=concerned, surprised=surprised)


def expression_track_for_speech(text: str, audio: Audio | None = None, *, listener: bool = False) -> ExpressionTrack:
    """The ``auto`` track of spoken text: each sentence's expression from where it is spoken.

    Sentences are placed by the audio's word timings when it has them, else by piper/espeak's
    sentence markers (``^ … $``) in its phoneme timings when their count matches, else in
    proportion to their length over the audio's duration. Each expression starts a little
    before its sentence (the face anticipates what it is about to say).

    Args:
        text: the spoken text.
        audio: the speech (None: every sentence starts at 0, i.e. the last one wins).
    """
    from .text import split_sentences

    sentences = split_sentences(" ".join(str(text).split())) if str(text).strip() else []
    if not sentences:
        return ExpressionTrack.constant(Expression())
    starts = _sentence_starts(sentences, audio)
    lead = 0.3
    keys = [
        ExpressionKey(max(0.0, t - lead) if i else 0.0, expression_from_text(s, listener=listener))
        for i, (s, t) in enumerate(zip(sentences, starts))
    ]
    return ExpressionTrack(tuple(keys))


def _sentence_starts(sentences: list[str], audio: Audio | None) -> list[float]:
    if audio is None:
        return [0.0] * len(sentences)
    if audio.words:
        # Walk the word timings: sentence k starts at the word that follows its predecessors' words.
        counts = [len(s.split()) for s in sentences]
        starts, i = [], 0
        for c in counts:
            starts.append(audio.words[min(i, len(audio.words) - 1)].start)
            i += c
        return starts
    marks = [p.start for p in audio.phonemes if p.phoneme == "^"]
    if marks and len(marks) == len(sentences):
        return marks
    lengths = np.array([len(s) for s in sentences], np.float64)
    edges = np.concatenate([[0.0], np.cumsum(lengths)[:-1]]) / max(1.0, lengths.sum())
    return list(edges * audio.duration)


def resolve_emotion(spec: EmotionSpec, text: str = "", audio: Audio | None = None) -> ExpressionTrack:
    """Turn an ``emotion=`` value into a track on the clip's own clock.

    ``"auto"`` reads the clip's text (``audio.text`` when ``text`` is empty); with no text it is
    neutral. Raises :class:`ConfigError` for unknown names.
    """
    if spec is None:
        return ExpressionTrack.constant(Expression())
    if isinstance(spec, ExpressionTrack):
        return spec
    if isinstance(spec, Expression):
        return ExpressionTrack.constant(spec)
    if isinstance(spec, str):
        if spec == "auto":
            text = text or (getattr(audio, "text", "") if audio is not None else "")
            return expression_track_for_speech(text, audio) if text else ExpressionTrack.constant(Expression())
        return ExpressionTrack.constant(Expression.named(spec))
    raise ConfigError(
        f"emotion must be one of {', '.join(EMOTIONS)}, 'auto', an Expression or an ExpressionTrack; got {spec!r}"
    )
