"""talkinghead.text: the one home of text cleaning and sentence splitting."""

from __future__ import annotations

import pytest

from talkinghead.errors import TextError
from talkinghead.text import SentenceBuffer, speakable_text, split_sentences


def test_speakable_text_removes_controls_and_ansi():
    assert speakable_text("\x1b[31mred\x1b[0m alert\x07\n now") == "red alert now"
    assert speakable_text("tab\there\u200bzero-width") == "tab herezero-width"
    with pytest.raises(TextError):
        speakable_text("\x1b[2J\x00\x01 ")
    with pytest.raises(TextError):
        speakable_text("?!...", require_words=True)


def test_split_sentences_basic_and_lossless():
    text = "Hello there!  How are you?\nFine, thanks. Dr. Who said 3.5 is fine…  Ok"
    pieces = split_sentences(text)
    assert pieces[:2] == ["Hello there!", "How are you?"]
    assert " ".join(pieces) == " ".join(text.split())


@pytest.mark.parametrize("max_chars", [1, 7, 40, 300])
def test_split_sentences_bounds_every_piece(max_chars):
    run_on = ("and then we walked " * 300) + "x" * 1000 + ", then a clause; and more: " + "word " * 50
    pieces = split_sentences(run_on, max_chars)
    assert all(0 < len(p) <= max_chars for p in pieces)
    assert "".join("".join(pieces).split()) == "".join(run_on.split())


def test_split_prefers_clause_boundaries():
    s = "one two three, four five six, seven eight nine"
    assert split_sentences(s, 16) == ["one two three,", "four five six,", "seven eight nine"]


def test_sentence_buffer_releases_whole_sentences_as_they_end():
    buf = SentenceBuffer()
    got = []
    for piece in ["Hel", "lo the", "re! It is 3", ".5 degrees", ". Bye", "!"]:
        got += buf.push(piece)
    assert got == ["Hello there!", "It is 3.5 degrees."]
    assert buf.flush() == ["Bye!"]
    assert buf.pending == ""


def test_sentence_buffer_bounds_pending_text():
    buf = SentenceBuffer(max_chars=20)
    out = []
    for _ in range(50):
        out += buf.push("word ")
    assert out and all(len(p) <= 20 for p in out)
    assert len(buf.pending) <= 20
    rest = buf.flush()
    assert " ".join(out + rest).split() == ["word"] * 50
