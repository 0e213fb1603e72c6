"""Cutting streamed text at sentence ends: only when sure, in order, nothing lost."""

from __future__ import annotations

import pytest

from tts_api.text.segmentation import segment
from tts_api.wyoming import sentences
from tts_api.wyoming.sentences import SentenceCutter, TextTooLong


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


def test_a_sentence_that_never_ends_is_cut_at_a_clause_before_it_outgrows_the_bound() -> None:
    cutter = SentenceCutter(max_pending_chars=200)
    text = "and then, " * 300
    released = [s for k in range(0, len(text), 7) for s in cutter.add(text[k : k + 7])]
    assert released and all(len(s) <= 200 and s.endswith(",") for s in released)
    assert " ".join([*released, cutter.finish()]).split() == text.split()


def test_a_giant_word_is_cut_inside_rather_than_held_whole() -> None:
    cutter = SentenceCutter(max_pending_chars=100)
    released = cutter.add("x" * 450)
    assert [len(s) for s in released] == [100] * 4 and cutter.finish() == "x" * 50


def test_each_piece_is_read_in_time_of_its_own_length(monkeypatch: pytest.MonkeyPatch) -> None:
    """A text stream must cost linear time on the service's one event loop: re-reading all the text that
    waits for its sentence end at every piece was quadratic (50,000 characters in tokens of 2)."""
    read = []

    def counting(text: str, *, normalize: bool = True) -> object:
        read.append(len(text))
        return segment(text, normalize=normalize)

    monkeypatch.setattr(sentences, "segment", counting)
    cutter = SentenceCutter()
    text = " ".join(f"word{i}" for i in range(1_000))  # no sentence end at all
    for k in range(0, len(text), 2):
        cutter.add(text[k : k + 2])
    assert sum(read) <= 25 * len(text)


def test_a_text_stream_longer_than_its_bound_is_refused() -> None:
    cutter = SentenceCutter(max_chars=100)
    cutter.add("a" * 60)
    with pytest.raises(TextTooLong, match="100 characters"):
        cutter.add("b" * 41)
