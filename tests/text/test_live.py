"""Text that grows while it is spoken (text/live.py): cuts only where the text is sure, flushes, the end,
bounds, and a property over random texts fed in random pieces."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tts_api.text.live import WINDOW_CHARS, LiveText, TextOverflow
from tts_api.text.planning import FIRST_CHUNK_CHARS, Chunk, has_speech, plan_chunks


def live(max_chars: int = 100_000) -> LiveText:
    return LiveText(normalize=True, max_chars=max_chars)


def take(text: LiveText, budget: int = 400) -> list[Chunk]:
    chunks = []
    while (chunk := text.next(budget)) is not None:
        chunks.append(chunk)
    return chunks


def said(text: LiveText, chunks: list[Chunk]) -> list[str]:
    return [text.text[c.start : c.end] for c in chunks]


def test_the_last_word_received_waits_for_what_follows_it() -> None:
    text = live()
    text.add("I saw Dr.")
    assert take(text) == []  # "Dr." may end a sentence, or not
    text.add(" Smith arrived. Then")
    assert said(text, take(text)) == ["I saw Dr. Smith arrived."]  # never cut after "Dr."
    assert not text.drained and text.remaining_chars == 0


def test_a_number_is_not_cut_at_its_point() -> None:
    text = live()
    text.add("It costs 5.")
    assert take(text) == []
    text.add("30 dollars today. OK")
    assert said(text, take(text)) == ["It costs 5.30 dollars today."]


def test_a_flush_speaks_what_is_there_and_more_may_follow() -> None:
    text = live()
    text.add("Then we left", flush=True)
    (chunk,) = take(text)
    assert (said(text, [chunk]), chunk.boundary) == (["Then we left"], "sentence")
    assert text.drained and not text.done
    text.add(" and came back")
    assert not text.drained and take(text) == []
    text.end()
    (last,) = take(text)
    assert (said(text, [last]), last.boundary, text.done) == (["and came back"], "end", True)


def test_a_full_budget_cuts_before_the_sentence_ends_but_never_after_the_last_word() -> None:
    text = live()
    text.add("The quick brown fox jumps over the lazy dog, and then it runs far away into the forest where")
    chunks = said(text, take(text, budget=40))
    assert len(chunks) >= 2 and chunks[0] != text.text
    # What is sure but ends at no boundary ("into the forest") waits for what follows, as does "where".
    assert " ".join(chunks) == text.text[: text.text.rindex(" into")]
    text.end()
    assert said(text, take(text, budget=40)) == ["into the forest where"]


def test_a_first_chunk_stays_within_its_budget_when_the_edge_of_the_sure_text_is_no_sentence_end() -> None:
    # The first chunk's reach keeps a first sentence whole; the edge of what is sure is not one, and taking
    # all of it made a voice agent's first chunk twice as long as the lone-stream plan's.
    reply = "Sure, I looked into the flights you asked about"
    text, chunks = live(), []
    for word in reply.split():
        text.add(word + " ")
        chunks += [c for c in [text.next(FIRST_CHUNK_CHARS, reach=39, min_cost=12)] if c is not None]
        if chunks:
            break
    assert said(text, chunks) == ["Sure, I looked"]
    assert chunks[0].cost <= FIRST_CHUNK_CHARS
    assert text.text == "Sure, I looked into the flights you "  # it came as soon as the cut was sure
    text.add("asked about. ")
    text.end()
    assert said(text, take(text, 80)) == ["into the flights you asked about."]


def test_a_word_longer_than_a_chunk_is_cut_before_it_is_complete() -> None:
    text = live()
    text.add("a" * 2000)
    chunks = take(text, budget=100)
    assert chunks and all(c.boundary == "word" for c in chunks)
    assert sum(c.end - c.start for c in chunks) >= 2000 - 100  # all but the part that may go on


def test_a_number_after_a_cut_is_not_read_as_a_list_item() -> None:
    text = live()
    text.add("Why? 5.")
    assert said(text, take(text)) == ["Why?"]
    text.add(" Then", flush=True)
    assert said(text, take(text)) == ["5. Then"]


def test_line_markup_still_counts_at_the_start_of_a_line() -> None:
    text = live()
    text.add("Steps follow.\n- Mix")
    assert [c.text for c in take(text)] == ["Steps follow."]
    text.add(" it well", flush=True)
    assert [c.text for c in take(text)] == ["Mix it well."]


def test_pause_tags_are_pauses_between_chunks() -> None:
    text = live()
    text.add("Hi. [pause:1s] there")
    chunks = take(text)
    assert [(c.text, c.pause_s) for c in chunks] == [("Hi.", 0.0), ("", 1.0)]


def test_text_past_the_bound_and_text_after_the_end_are_refused() -> None:
    text = live(max_chars=10)
    text.add("x" * 10)
    with pytest.raises(TextOverflow):
        text.add("y")
    text.end()
    with pytest.raises(ValueError, match="ended"):
        text.add("z")


def test_a_cut_reads_a_window_of_the_text_however_far_it_runs_ahead() -> None:
    text = live()
    sentence = "This is one sentence of a long reply. "
    text.add(sentence * (3 * WINDOW_CHARS // len(sentence)))
    first = text.next(400)
    assert first is not None and first.end <= WINDOW_CHARS
    rest = take(text)
    assert all(a.end <= b.start for a, b in zip([first, *rest], rest, strict=False))


WORDS = [
    "Hello",
    "there",
    "Dr.",
    "Smith",
    "5.",
    "30",
    "we",
    "left,",
    "really",
    "far.",
    "Why?",
    "[pause:0.2s]",
]


@settings(max_examples=120, deadline=None)
@given(
    words=st.lists(st.sampled_from(WORDS), min_size=1, max_size=40),
    splits=st.lists(st.integers(0, 400), max_size=12),
    flushes=st.lists(st.booleans(), max_size=12),
    budget=st.integers(20, 200),
)
def test_any_text_fed_in_any_pieces_is_spoken_once_in_order_never_past_what_is_sure(
    words: list[str], splits: list[int], flushes: list[bool], budget: int
) -> None:
    whole = " ".join(words)
    cuts = sorted({min(s, len(whole)) for s in splits} | {len(whole)})
    text, chunks, start = live(), [], 0
    for end, flush in zip(cuts, [*flushes, *[False] * len(cuts)], strict=False):
        text.add(whole[start:end], flush=flush)
        start = end
        for chunk in take(text, budget):
            if not chunk.is_pause and chunk.end == len(text.text.rstrip()):
                # It ends at the last word received: only a flush makes that word sure.
                assert flush or len(text.text[chunk.start : chunk.end]) >= budget
            chunks.append(chunk)
    text.end()
    chunks += take(text, budget)
    assert text.done
    spans = [(c.start, c.end) for c in chunks]
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))
    # Every word is spoken once; what no chunk covers has nothing to say (a "." that came after a flush
    # had made the word before it complete).
    assert text.text == whole
    assert all(not has_speech(plan_chunks(gap)) for gap in _gaps(text.text, spans))


def _gaps(text: str, spans: list[tuple[int, int]]) -> list[str]:
    """The text between (and around) the spans."""
    edges = [0, *itertools.chain.from_iterable(spans), len(text)]
    return [text[a:b] for a, b in zip(edges[::2], edges[1::2], strict=True)]
