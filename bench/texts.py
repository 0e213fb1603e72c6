"""The fixed English prose every run speaks: one text per input size, and short phrases for the memory run."""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["MEMORY_PHRASES", "QUICK_TEXTS", "TEXTS", "Size"]

# One sentence, short enough to be a single chunk for the server's planner and for KPipeline alike,
# so that its time to first audio compares like with like (figure 4 relies on it).
SHORT = "Clara walked home along the river at dusk."

MEDIUM = (
    "The old lighthouse had not been lit in forty years, yet every evening the keeper's grandson climbed "
    "the spiral stairs to wind the clock. He said the building deserved to know the time, even if the ships "
    "no longer needed it. From the gallery he could see the fishing boats coming home, their lamps swinging "
    "in the swell, and the long line of the coast fading from green to grey as the light went."
)

LONG = (
    "When the library reopened after the flood, the first thing people noticed was the smell. It was not "
    "damp, as everyone had feared, but something closer to cedar and fresh paint, as if the building had "
    "decided to start over rather than simply recover. The librarians had spent the winter drying books one "
    "page at a time, hanging them on lines strung between the shelves like laundry in a narrow street. "
    "Volunteers came every morning with hair dryers and patience, and by spring most of the collection had "
    "been saved. The children's room was the exception. Its lower shelves had stood in water for three days, "
    "and nearly every picture book on them was lost. Instead of replacing them from a catalogue, the head "
    "librarian asked the town to bring in the books they remembered from their own childhoods. Within a week "
    "the tables were covered with worn paperbacks, school prizes with inscriptions on the flyleaf, and "
    "hardbacks whose spines had been mended with tape more than once. Some of them were valuable, but most "
    "were simply loved. Each donor wrote a short note explaining why the book mattered, and the notes were "
    "tucked inside the front covers. Now, when a child borrows a story about a bear who cannot sleep or a "
    "girl who builds a boat from a bathtub, they also borrow a stranger's memory of reading it for the first "
    "time. The librarians say the returned books often come back with new notes added beneath the old ones, "
    "written in careful pencil by readers who wanted to say that they had loved it too."
)

Size = str  # "short", "medium" or "long"

TEXTS: Mapping[Size, str] = {"short": SHORT, "medium": MEDIUM, "long": LONG}

# `--quick` speaks shorter texts, so that a run fits in two minutes. Its long text is three lines,
# which Kokoro synthesizes as three chunks: abandoning it after the first audio still leaves work
# behind for figure 6 to measure.
QUICK_TEXTS: Mapping[Size, str] = {
    "short": SHORT,
    "medium": "The lighthouse was dark for years, yet its clock still ran.",
    "long": "The library reopened in May.\nIt smelled of cedar.\nChildren came back.",
}

# The memory run's requests: a word or two each (200 of them must fit the time budget), every format.
MEMORY_PHRASES: tuple[str, ...] = (
    "Yes.",
    "Thank you.",
    "Okay.",
    "Good night.",
    "Hello.",
    "Of course.",
    "Ready.",
    "See you.",
)
