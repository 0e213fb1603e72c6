"""Cutting streamed text at sentence ends: only when sure, in order, nothing lost."""

from __future__ import annotations

import pytest

from tts_api.wyoming.sentences import SentenceCutter


def cut(pieces: list[str]) -> list[list[str]]:
    """What each piece released, then the rest that finish() hands over."""
    cutter = SentenceCutter()
    return [cutter.add(piece) for piece in pieces] + [[cutter.finish()]]


@pytest.mark.parametrize(
    ("pieces", "released"),
    [
        # A period is an end only once the next word shows it is.
        (["Hello world.", " How", " are you?"], [[], ["Hello world."], [], ["How are you?"]]),
        # Tokens split anywhere, even inside a word.
        (["Hel", "lo. Wor", "ld! Ok"], [[], ["Hello."], ["World!"], ["Ok"]]),
        # "Dr." before a name and "$5." before "20" are not ends.
        (
            ["Dr.", " Smith paid $5.", "20 today. Then", " left."],
            [[], [], ["Dr. Smith paid $5.20 today."], [], ["Then left."]],
        ),
        # Several sentences in one piece come out together, in order.
        (["One. Two! Three? Four"], [["One.", "Two!", "Three?"], ["Four"]]),
        # A paragraph break ends a sentence that has no punctuation.
        (["A heading\n\nThe text"], [["A heading"], ["The text"]]),
        # A clause is not a sentence.
        (["First, second; third: fourth"], [[], ["First, second; third: fourth"]]),
        ([""], [[], [""]]),
    ],
    ids=[
        "wait-for-next-word",
        "split-inside-words",
        "abbreviations-and-numbers",
        "several",
        "paragraph",
        "clauses",
        "empty",
    ],
)
def test_sentences_are_released_when_sure(pieces: list[str], released: list[list[str]]) -> None:
    assert cut(pieces) == released


def test_nothing_is_lost_or_reordered() -> None:
    text = "It was 3 p.m. The U.S. team won 2-1. Really? Yes... it did!\n\nThe end"
    cutter = SentenceCutter()
    out: list[str] = []
    for k in range(0, len(text), 3):
        out += cutter.add(text[k : k + 3])
    out.append(cutter.finish())
    assert " ".join(out).split() == text.split()


def test_a_bad_pause_tag_is_left_for_the_server_to_reject() -> None:
    cutter = SentenceCutter()
    assert cutter.add("Wait [pause:abc] here. And") == []
    assert cutter.finish() == "Wait [pause:abc] here. And"
