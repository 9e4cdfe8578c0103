"""Text on its way to speech: cleaning, checking, and cutting it into sentences.

The one home for text handling. The Avatar, every TTS backend, the conversation and the
streaming pipeline use these functions:

* :func:`speakable_text` — collapse whitespace, drop control characters, refuse empty text;
* :func:`clean_for_speech` — remove what a TTS would read out wrongly (markdown, emoji);
* :func:`cut_at_sentence` — shorten an answer at a sentence boundary;
* :func:`split_sentences` — cut text into sentences of bounded length (a TTS synthesises long text
  piece by piece, so memory stays bounded, and a stream can speak the first sentence early);
* :class:`SentenceBuffer` — the same, incrementally, for text that arrives in pieces (an LLM's
  streamed answer);
* :func:`detect_scripts`, :func:`language_scripts` and :func:`check_scripts` — which writing systems
  a text uses, which ones a voice of a language reads, and refusing text a voice cannot speak
  before it is synthesised (an English voice reads Arabic as "Arabic letter, Arabic letter…").
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from functools import lru_cache

from .errors import TextError

__all__ = [
    "MAX_SENTENCE_CHARS",
    "SCRIPT_NAMES",
    "SentenceBuffer",
    "UnspeakableTextError",
    "check_scripts",
    "clean_for_speech",
    "cut_at_sentence",
    "detect_scripts",
    "language_scripts",
    "speakable_text",
    "split_sentences",
]

#: Longest piece :func:`split_sentences` returns by default (characters).
MAX_SENTENCE_CHARS = 300

# ANSI escape sequences (CSI ... final byte, OSC ... BEL/ST, and two-byte escapes).
_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")


def _strip_controls(text: str) -> str:
    """Remove ANSI escape sequences and control/format characters; keep line breaks and tabs as spaces."""
    text = _ANSI.sub(" ", text)
    out = []
    for ch in text:
        cat = unicodedata.category(ch)
        if ch in "\t\n\r\f\v":
            out.append(" ")
        elif cat == "Cc" or (cat == "Cf" and ch not in "\u200d\u200c") or cat in ("Cs", "Co", "Cn"):
            continue
        else:
            out.append(ch)
    return "".join(out)


def speakable_text(text: str, *, require_words: bool = False) -> str:
    """Normalise text for a TTS: NFC, control characters and ANSI codes removed, whitespace collapsed.

    Args:
        require_words: also refuse text with no letter or digit (only punctuation).

    Raises:
        TextError: nothing to speak.
    """
    text = " ".join(_strip_controls(unicodedata.normalize("NFC", str(text))).split())
    if not text:
        raise TextError("the text is empty; give at least one word to say")
    if require_words and not any(ch.isalnum() for ch in text):
        raise TextError(f"the text {text!r} has no words to speak")
    return text


# A sentence ends at . ! ? … (or their CJK / Arabic forms), possibly followed by closing quotes
# or brackets, then whitespace (or, for the full-width forms, directly).
_SENTENCE_END = re.compile(r"(?:(?<=[.!?…])[\"'”’)\]]*\s+|(?<=[。！？؟])[\"'”’)\]]*\s*)")
_CLAUSE_END = re.compile(r"(?<=[,;:—–،、，；：])\s+")


def cut_at_sentence(text: str, max_chars: int) -> str:
    """Shorten ``text`` to at most ``max_chars`` characters, ending at a sentence boundary.

    If even the first sentence is longer, it is cut at the last word boundary and ends with "…".
    """
    text = " ".join(text.split())
    if max_chars <= 0 or len(text) <= max_chars:
        return text
    out = ""
    for match in _SENTENCE_END.finditer(text + " "):
        candidate = text[: match.start()].rstrip()
        if len(candidate) <= max_chars:
            out = candidate
        else:
            break
    if out:
        return out
    head = text[:max_chars].rsplit(" ", 1)[0].rstrip(",;:-– ")
    return head + "…"


def _pieces(text: str, pattern: re.Pattern[str]) -> list[str]:
    out, start = [], 0
    for match in pattern.finditer(text):
        piece = text[start : match.start()].strip()
        if piece:
            out.append(piece)
        start = match.end()
    rest = text[start:].strip()
    if rest:
        out.append(rest)
    return out


def _bounded(piece: str, max_chars: int) -> list[str]:
    """Cut one over-long sentence: at clause punctuation, then between words, then inside a word."""
    if len(piece) <= max_chars:
        return [piece]
    out: list[str] = []
    for clause in _pieces(piece, _CLAUSE_END):
        if len(clause) <= max_chars:
            out.append(clause)
            continue
        line = ""
        for word in clause.split(" "):
            while len(word) > max_chars:  # a single "word" longer than a piece
                if line:
                    out.append(line)
                    line = ""
                out.append(word[:max_chars])
                word = word[max_chars:]
            if line and len(line) + 1 + len(word) > max_chars:
                out.append(line)
                line = word
            else:
                line = f"{line} {word}" if line else word
        if line:
            out.append(line)
    # merge neighbours that fit together, so clauses are not spoken as separate sentences needlessly
    merged: list[str] = []
    for p in out:
        if merged and len(merged[-1]) + 1 + len(p) <= max_chars:
            merged[-1] = f"{merged[-1]} {p}"
        else:
            merged.append(p)
    return merged


def split_sentences(text: str, max_chars: int = MAX_SENTENCE_CHARS) -> list[str]:
    """Cut ``text`` into sentences, none longer than ``max_chars`` characters.

    Sentences end at ``. ! ? …`` (and ``。！？؟``). A longer sentence is cut at clause punctuation
    (``, ; :`` and dashes), then between words, and a single word longer than ``max_chars`` is cut
    inside. Joining the pieces with spaces gives back the text with its whitespace collapsed.

    >>> split_sentences("Hello there! How are you? Fine.")
    ['Hello there!', 'How are you?', 'Fine.']
    """
    if max_chars < 1:
        raise ValueError(f"max_chars must be at least 1, got {max_chars}")
    text = " ".join(text.split())
    out: list[str] = []
    for sentence in _pieces(text, _SENTENCE_END):
        out.extend(_bounded(sentence, max_chars))
    return out


class SentenceBuffer:
    """Collects text that arrives in pieces and releases whole sentences as soon as they end.

    >>> buf = SentenceBuffer()
    >>> buf.push("Hello the"), buf.push("re! How are"), buf.flush()
    ([], ['Hello there!'], ['How are'])

    A sentence is released when the text after its end mark has begun (so "3.5" is not cut at the
    dot), or when the pending text grows past ``max_chars`` (then it is cut as in
    :func:`split_sentences`, keeping the unfinished tail).
    """

    def __init__(self, max_chars: int = MAX_SENTENCE_CHARS) -> None:
        if max_chars < 1:
            raise ValueError(f"max_chars must be at least 1, got {max_chars}")
        self.max_chars = max_chars
        self._pending = ""

    def push(self, piece: str) -> list[str]:
        """Add text; return the sentences it completed (possibly none)."""
        self._pending += piece
        last = None
        for match in _SENTENCE_END.finditer(self._pending):
            if match.end() < len(self._pending):  # something follows the boundary: it is final
                last = match
        out: list[str] = []
        if last is not None:
            done, self._pending = self._pending[: last.end()], self._pending[last.end() :]
            out = split_sentences(done, self.max_chars)
        if len(self._pending) > self.max_chars:
            pieces = split_sentences(self._pending, self.max_chars)
            if len(pieces) > 1:
                # keep the last (unfinished) piece pending, and whether a word boundary follows it
                out.extend(pieces[:-1])
                self._pending = pieces[-1] + (" " if self._pending[-1:].isspace() else "")
        return out

    def flush(self) -> list[str]:
        """Return what is left as sentences, and empty the buffer."""
        rest, self._pending = self._pending, ""
        return split_sentences(rest, self.max_chars)

    @property
    def pending(self) -> str:
        """Text received but not yet released."""
        return self._pending


_MD_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_MD_CODE_FENCE = re.compile(r"```.*?(```|$)", re.S)
_MD_MARKS = re.compile(r"(\*\*|__|\*|`|~~)")
_MD_LINE_START = re.compile(r"^\s*(#{1,6}\s+|[-*+•]\s+|\d+[.)]\s+|>\s*)", re.M)
_EMOJI = re.compile("[\U0001f000-\U0001faff\u2600-\u27bf\ufe0f\u200d]")


def clean_for_speech(text: str) -> str:
    """Remove what a TTS would read out wrongly: markdown marks, list bullets, code, links, emoji.

    ``"**Sure!** Here are [two](http://x) ideas:\\n- one\\n- two 🙂"`` becomes
    ``"Sure! Here are two ideas: one. two"``.
    """
    text = _MD_CODE_FENCE.sub(" ", text)
    text = _MD_LINK.sub(r"\1", text)
    lines = []
    for line in _MD_LINE_START.sub("", text).splitlines():
        line = line.strip()
        if line:
            lines.append(line)
    # a list item ends like a sentence, so that the speech pauses between items
    joined = " ".join(l if l[-1] in ".!?:;,…" or i == len(lines) - 1 else l + "." for i, l in enumerate(lines))
    joined = _MD_MARKS.sub("", joined)
    joined = _EMOJI.sub("", joined)
    return " ".join(joined.split())


# -- writing systems -----------------------------------------------------------------------------------
#: ISO 15924 codes of the writing systems :func:`detect_scripts` tells apart, with their names.
SCRIPT_NAMES: dict[str, str] = {
    "Latn": "Latin", "Grek": "Greek", "Cyrl": "Cyrillic", "Armn": "Armenian", "Hebr": "Hebrew",
    "Arab": "Arabic", "Syrc": "Syriac", "Thaa": "Thaana", "Nkoo": "N'Ko", "Deva": "Devanagari",
    "Beng": "Bengali", "Guru": "Gurmukhi", "Gujr": "Gujarati", "Orya": "Odia", "Taml": "Tamil",
    "Telu": "Telugu", "Knda": "Kannada", "Mlym": "Malayalam", "Sinh": "Sinhala", "Thai": "Thai",
    "Laoo": "Lao", "Tibt": "Tibetan", "Mymr": "Myanmar", "Geor": "Georgian", "Hang": "Hangul (Korean)",
    "Ethi": "Ethiopic", "Cher": "Cherokee", "Cans": "Canadian syllabics", "Khmr": "Khmer",
    "Mong": "Mongolian", "Hira": "Hiragana (Japanese)", "Kana": "Katakana (Japanese)",
    "Bopo": "Bopomofo", "Hani": "Chinese characters (Han)", "Yiii": "Yi", "Tfng": "Tifinagh",
}

# The first word(s) of a letter's Unicode name -> its script.
_NAME_SCRIPT = {
    "LATIN": "Latn", "GREEK": "Grek", "COPTIC": "Grek", "CYRILLIC": "Cyrl", "ARMENIAN": "Armn", "HEBREW": "Hebr",
    "ARABIC": "Arab", "SYRIAC": "Syrc", "THAANA": "Thaa", "NKO": "Nkoo", "DEVANAGARI": "Deva", "BENGALI": "Beng",
    "GURMUKHI": "Guru", "GUJARATI": "Gujr", "ORIYA": "Orya", "TAMIL": "Taml", "TELUGU": "Telu", "KANNADA": "Knda",
    "MALAYALAM": "Mlym", "SINHALA": "Sinh", "THAI": "Thai", "LAO": "Laoo", "TIBETAN": "Tibt", "MYANMAR": "Mymr",
    "GEORGIAN": "Geor", "HANGUL": "Hang", "ETHIOPIC": "Ethi", "CHEROKEE": "Cher", "CANADIAN": "Cans",
    "KHMER": "Khmr", "MONGOLIAN": "Mong", "HIRAGANA": "Hira", "KATAKANA": "Kana", "BOPOMOFO": "Bopo",
    "CJK": "Hani", "YI": "Yiii", "TIFINAGH": "Tfng",
}

#: Writing systems a language is written in (ISO 639 codes as piper and espeak name their voices;
#: a language not listed is assumed to be written in Latin letters).
_LANGUAGE_SCRIPTS: dict[str, frozenset[str]] = {}
for _codes, _scripts in (
    ("ru uk be bg mk kk ky mn tt ba cv tg ce sah", "Cyrl"), ("sr", "Cyrl Latn"), ("el grc", "Grek"),
    ("hy hyw", "Armn"), ("he yi", "Hebr"), ("ar fa ur ps sd ug ckb", "Arab"), ("hi mr ne sa kok mai bho", "Deva"),
    ("bn as bpy", "Beng"), ("pa", "Guru"), ("gu", "Gujr"), ("or", "Orya"), ("ta", "Taml"), ("te", "Telu"),
    ("kn", "Knda"), ("ml", "Mlym"), ("si", "Sinh"), ("th", "Thai"), ("lo", "Laoo"), ("bo dz", "Tibt"),
    ("my shn", "Mymr"), ("ka", "Geor"), ("ko", "Hang Hani"), ("am ti", "Ethi"), ("chr", "Cher"), ("km", "Khmr"),
    ("zh cmn yue hak nan wuu", "Hani Bopo"), ("ja", "Hani Hira Kana"), ("dv", "Thaa"),
):
    for _code in _codes.split():
        _LANGUAGE_SCRIPTS[_code] = frozenset(_scripts.split())
# Voices whose language code names a Latin spelling of a non-Latin language.
_LATIN_VARIANTS = ("latn", "pinyin")

#: Scripts whose single letters are symbols any voice reads by name (π, λ, Ω).
_SYMBOL_SCRIPTS = frozenset({"Grek"})


@lru_cache(maxsize=4096)
def _script_of(ch: str) -> str | None:
    if not unicodedata.category(ch).startswith("L"):
        return None
    name = unicodedata.name(ch, "")
    first, _, rest = name.partition(" ")
    if first in ("FULLWIDTH", "HALFWIDTH"):
        first = rest.partition(" ")[0]
    if first == "MODIFIER" or not first:
        return None
    return _NAME_SCRIPT.get(first)


def detect_scripts(text: str) -> dict[str, int]:
    """Count the letters of ``text`` per writing system (ISO 15924 code, see :data:`SCRIPT_NAMES`).

    Digits, punctuation, symbols and emoji belong to no script and are not counted.

    >>> detect_scripts("Hello мир 3")
    {'Latn': 5, 'Cyrl': 3}
    """
    counts: dict[str, int] = {}
    for ch in text:
        script = _script_of(ch)
        if script is not None:
            counts[script] = counts.get(script, 0) + 1
    return counts


def language_scripts(language: str | None) -> frozenset[str] | None:
    """The writing systems a voice of ``language`` reads (``"en-us"``, ``"ru_RU"``, ``"cmn"``).

    A voice reads its language's script and Latin letters (names and brands in Latin letters are
    read the English way, as espeak does). None when ``language`` is not given.
    """
    if not language:
        return None
    code = language.lower().replace("_", "-")
    primary = code.split("-")[0].split("/")[-1]
    if any(v in code.split("-") for v in _LATIN_VARIANTS) or primary == "py":
        return frozenset({"Latn"})
    return _LANGUAGE_SCRIPTS.get(primary, frozenset()) | {"Latn"}


class UnspeakableTextError(TextError):
    """Text in a writing system the selected voice cannot read (``scripts`` names which)."""

    def __init__(self, message: str, scripts: Iterable[str]) -> None:
        super().__init__(message)
        self.scripts = tuple(scripts)


def check_scripts(text: str, readable: Iterable[str] | None, *, voice: str = "the voice", hint: str = "") -> None:
    """Refuse ``text`` when it has letters the voice cannot read, before anything is synthesised.

    Args:
        readable: the scripts the voice reads (see :func:`language_scripts`); None skips the check.
        voice: how to name the voice in the message.
        hint: what can speak the text instead, appended to the message.

    A single letter of a symbol script (π in "π is 3.14") is allowed; words are not.

    Raises:
        UnspeakableTextError: which scripts cannot be read, and ``hint``.
    """
    if readable is None:
        return
    readable = frozenset(readable)
    counts: dict[str, int] = {}
    for word in re.findall(r"\w+", text):
        for script, n in detect_scripts(word).items():
            if script in readable or (script in _SYMBOL_SCRIPTS and n == 1 and len(word) == 1):
                continue
            counts[script] = counts.get(script, 0) + n
    if not counts:
        return
    names = " and ".join(SCRIPT_NAMES.get(s, s) for s in sorted(counts, key=counts.get, reverse=True))
    message = f"{voice} cannot speak {names} text (it reads {', '.join(SCRIPT_NAMES.get(s, s) for s in sorted(readable))})"
    raise UnspeakableTextError(message + (f"; {hint}" if hint else ""), counts)
