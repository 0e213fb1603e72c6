"""Make LLM-style text speakable: Markdown, emoji, URLs, emails, symbols.

Every edit is recorded, so any span of the output maps back to the span of the input it came from.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from functools import partial

from .spans import Edit, NormalizedText

__all__ = ["normalize"]


def normalize(text: str, *, mid_line: bool = False) -> NormalizedText:
    """Strip Markdown and emoji, read URLs and emails aloud, replace a few symbols, tidy whitespace.

    Numbers, money, dates, times, units and most symbols are left for misaki, which reads them well.
    `mid_line`: the text goes on a line begun before it (a live stream's next piece), so its first line has
    no line markup: "5. Then" there is a number, not a list item.
    """
    result = NormalizedText.unchanged(text)
    # Emoji go first so that a Markdown line ending in one still gets its period.
    for pass_ in (
        _symbol_edits,
        partial(_markdown_edits, mid_line=mid_line),
        _address_edits,
        _whitespace_edits,
    ):
        result = result.edit(_clean(pass_(result.text)))
    return result


def _clean(edits: list[Edit]) -> list[Edit]:
    """Sort edits and drop any that overlap an earlier one (a safety net for rare markup mixes)."""
    kept: list[Edit] = []
    pos = 0
    for edit in sorted(edits, key=lambda e: (e[0], e[1])):
        if edit[0] >= pos:
            kept.append(edit)
            pos = edit[1]
    return kept


# --- Markdown ------------------------------------------------------------------------------------------
# Every quantifier is bounded or runs over a class that excludes what follows it, so matching is linear.

_FENCE = re.compile(r"[ \t]{0,3}(`{3,}|~{3,})")
_QUOTE = re.compile(r"[ \t]{0,3}(?:>[ \t]?){1,16}")
_HEADING = re.compile(r"[ \t]{0,3}#{1,6}(?:[ \t]+|$)")
# Ordered items stop at 3 digits so that a line opening with a year ("1999. It was…") keeps it.
_BULLET = re.compile(r"[ \t]{0,12}(?:[-*+•‣◦▪]|\d{1,3}[.)])[ \t]+(?:\[[ xX]\][ \t]+)?")
_LINK = re.compile(
    r"(!?)\[([^\[\]\n]{0,500})\]\([ \t]{0,4}(<[^<>\n]{0,2000}>|[^()\s]{0,2000})"
    r"(?:[ \t]{1,4}(?:\"[^\"\n]{0,500}\"|'[^'\n]{0,500}'))?[ \t]{0,4}\)"
)
# misaki's own inline syntax, e.g. [Kokoro](/kˈOkəɹO/) for a pronunciation: kept verbatim.
_MISAKI_FEATURE = re.compile(r"/[^/]*/|#[^#]*#|[+-]?\d{1,2}|[+-]?0\.5")
_AUTOLINK = re.compile(
    r"<((?:https?|ftp)://[^<>\s]{1,2000}|mailto:[^<>\s]{1,320}|[^<>\s@]{1,64}@[^<>\s@]{1,255})>"
)
_BACKTICKS = re.compile(r"`+")
_DELIMITER = re.compile(r"\*+|_+|~+")
_BLOCK_END_PUNCT = frozenset(".!?:;,…")
_TRAILING_MARKUP = " \t*_`~|"


def _markdown_edits(text: str, *, mid_line: bool = False) -> list[Edit]:
    edits: list[Edit] = []
    fence: str | None = None
    pos = 0
    while True:
        newline = text.find("\n", pos)
        end = len(text) if newline < 0 else newline
        if mid_line and pos == 0:
            _inline_edits(text, pos, end, edits)
        else:
            fence = _line_edits(text, pos, end, fence, edits)
        if newline < 0:
            return edits
        pos = newline + 1


def _line_edits(text: str, start: int, end: int, fence: str | None, edits: list[Edit]) -> str | None:
    """Add the edits for one line; return the fence character while inside a fenced code block."""
    line = text[start:end]
    fence_match = _FENCE.match(line)
    if fence_match and (fence is None or fence_match.group(1)[0] == fence):
        # Fences and their info string ("```python") are markup; the code itself is spoken.
        edits.append((start, end, ""))
        return fence_match.group(1)[0] if fence is None else None
    if fence is not None:
        return fence
    if _is_rule(line):
        edits.append((start, end, ""))
        return None
    cursor = start
    quote = _QUOTE.match(text, cursor, end)
    if quote:
        edits.append((cursor, quote.end(), ""))
        cursor = quote.end()
    heading = _HEADING.match(text, cursor, end)
    marker = heading or _BULLET.match(text, cursor, end)
    if marker:
        edits.append((cursor, marker.end(), ""))
        cursor = marker.end()
    content_end, block = end, marker is not None
    if heading:
        content_end = _closing_hashes(text, cursor, end, edits)
    elif text[cursor:end].lstrip().startswith("|"):
        if _is_table_rule(text[cursor:end]):
            # The whole line, newline included: a blank line here would split the table into paragraphs.
            while edits and edits[-1][0] >= start:
                edits.pop()
            edits.append((start, min(end + 1, len(text)), ""))
            return None
        content_end, block = _table_row_edits(text, cursor, end, edits), True
    _inline_edits(text, cursor, content_end, edits)
    if block:
        _end_block(text, cursor, content_end, edits)
    return None


def _is_rule(line: str) -> bool:
    chars = line.replace(" ", "").replace("\t", "")
    return len(chars) >= 3 and chars[0] in "-*_=" and chars == chars[0] * len(chars)


def _is_table_rule(line: str) -> bool:
    return "-" in line and not line.strip(" \t|:-")


def _closing_hashes(text: str, start: int, end: int, edits: list[Edit]) -> int:
    """Delete a heading's closing '###'; return where its content ends."""
    stripped = text[start:end].rstrip(" \t")
    bare = stripped.rstrip("#")
    if bare != stripped and (not bare or bare[-1] in " \t"):
        content_end = start + len(bare.rstrip(" \t"))
        edits.append((content_end, end, ""))
        return content_end
    return end


def _table_row_edits(text: str, start: int, end: int, edits: list[Edit]) -> int:
    """Read a table row as a list: outer pipes go, inner pipes become commas; return where content ends."""
    row = text[start:end]
    first, last = row.index("|"), row.rindex("|")
    trailing = last > first and not row[last + 1 :].strip()
    edits.append((start, start + first + 1, ""))
    content_end = start + last if trailing else end
    for k in range(first + 1, content_end - start):
        if row[k] == "|":
            cell_end = len(row[:k].rstrip(" \t"))
            edits.append((start + max(cell_end, first + 1), start + k + 1, ","))
    if trailing:
        edits.append((content_end, end, ""))
    return content_end


def _end_block(text: str, start: int, end: int, edits: list[Edit]) -> None:
    """End a heading, list item or table row with a period so the model pauses before the next line."""
    content = text[start:end].rstrip(_TRAILING_MARKUP)
    if content and content[-1] not in _BLOCK_END_PUNCT:
        edits.append((start + len(content), start + len(content), "."))


def _inline_edits(text: str, start: int, end: int, edits: list[Edit]) -> None:
    code = _code_span_edits(text, start, end, edits)
    links: list[tuple[int, int]] = []  # whole links, to keep autolinks out of them
    targets: list[tuple[int, int]] = []  # where emphasis is not markup
    for match in _LINK.finditer(text, start, end):
        if _hits(code, *match.span()):
            continue
        links.append(match.span())
        target = match.group(3).strip("<>")
        if not match.group(1) and _MISAKI_FEATURE.fullmatch(target):
            targets.append(match.span())
            continue
        edits.append((match.start(), match.start(2), ""))
        edits.append((match.end(2), match.end(), ""))
        targets.append((match.end(2), match.end()))
    taken = _merged([*code, *links])
    for match in _AUTOLINK.finditer(text, start, end):
        if not _hits(taken, *match.span()):
            edits.append((match.start(), match.start() + 1, ""))
            edits.append((match.end() - 1, match.end(), ""))
            targets.append(match.span())
    urls = [match.span() for match in _URL.finditer(text, start, end)]
    _emphasis_edits(text, start, end, _merged([*code, *targets, *urls]), edits)


def _code_span_edits(text: str, start: int, end: int, edits: list[Edit]) -> list[tuple[int, int]]:
    """Delete backticks (code is spoken as text); return the code spans, where nothing else is markup."""
    spans: list[tuple[int, int]] = []
    opener: re.Match[str] | None = None
    for match in _BACKTICKS.finditer(text, start, end):
        edits.append((match.start(), match.end(), ""))
        if opener is None:
            opener = match
        elif len(match.group()) == len(opener.group()):
            spans.append((opener.start(), match.end()))
            opener = None
    return spans


def _emphasis_edits(
    text: str, start: int, end: int, protected: list[tuple[int, int]], edits: list[Edit]
) -> None:
    """Delete paired *, **, ***, _, __ and ~~ delimiters (simplified CommonMark flanking) and stray *."""
    openers: list[re.Match[str]] = []
    stray: list[re.Match[str]] = []
    for match in _DELIMITER.finditer(text, start, end):
        run = match.group()
        if len(run) > 3 or (run[0] == "~" and len(run) != 2) or _hits(protected, *match.span()):
            continue
        before = text[match.start() - 1] if match.start() > start else " "
        after = text[match.end()] if match.end() < end else " "
        if run[0] == "*" and before.isdigit() and after.isdigit():
            continue  # 2*3*4 is arithmetic
        intraword_ok = run[0] != "_"  # snake_case_names are not emphasis
        can_open = not after.isspace() and (intraword_ok or not before.isalnum())
        can_close = not before.isspace() and (intraword_ok or not after.isalnum())
        if can_close and _close(openers, match, edits, stray):
            continue
        if can_open:
            openers.append(match)
        elif not (before.isspace() and after.isspace()):
            stray.append(match)
    # An unpaired '*' or '~~' would be read aloud as "asterisk" or "tilde"; an unpaired '_' is left to misaki.
    edits.extend((m.start(), m.end(), "") for m in (*stray, *openers) if m.group()[0] != "_")


def _close(
    openers: list[re.Match[str]], closer: re.Match[str], edits: list[Edit], stray: list[re.Match[str]]
) -> bool:
    # Look only a few openers deep: enough for real nesting, and it keeps the pass linear.
    for depth in range(len(openers) - 1, max(len(openers) - 8, 0) - 1, -1):
        if openers[depth].group() == closer.group():
            edits.append((openers[depth].start(), openers[depth].end(), ""))
            edits.append((closer.start(), closer.end(), ""))
            stray.extend(openers[depth + 1 :])
            del openers[depth:]
            return True
    return False


def _merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sort spans and merge the overlapping ones, for _hits."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start < merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def _hits(spans: list[tuple[int, int]], start: int, end: int) -> bool:
    """Tell whether [start, end) overlaps one of the sorted, disjoint spans."""
    k = bisect_left(spans, end, key=lambda span: span[0]) - 1
    return k >= 0 and spans[k][1] > start


# --- URLs and emails -----------------------------------------------------------------------------------

_URL = re.compile(r"(?<![\w@/.])(?:(?:https?|ftp)://|www\.)[^\s<>\"'`()\[\]{}|\\^]{1,2000}", re.IGNORECASE)
_EMAIL = re.compile(
    r"(?<![\w.%+-])(?:mailto:)?[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){1,8}"
)
_SCHEME = re.compile(r"(?:(?:https?|ftp)://)?(?:[^/@\s]{1,100}@)?(?:www\.)?", re.IGNORECASE)
_URL_TRAILING = ".,;:!?'\""
_SPOKEN = {
    ".": " dot ",
    "/": " slash ",
    "@": " at ",
    ":": " colon ",
    "_": " underscore ",
    "-": " dash ",
    "+": " plus ",
}
# Path segments read aloud; deeper paths, queries and fragments are dropped: a listener cannot use them.
_MAX_URL_PATH_SEGMENTS = 2


def _address_edits(text: str) -> list[Edit]:
    edits: list[Edit] = []
    taken: list[tuple[int, int]] = []
    for match in _URL.finditer(text):
        end = match.start() + len(match.group().rstrip(_URL_TRAILING))
        if end - match.start() > 4:
            edits.extend(_url_edits(text, match.start(), end))
            taken.append((match.start(), end))
    for match in _EMAIL.finditer(text):
        if match.group().rsplit(".", 1)[-1].isalpha() and not _hits(taken, *match.span()):
            edits.extend(_email_edits(text, match.start(), match.end()))
    return edits


def _url_edits(text: str, start: int, end: int) -> list[Edit]:
    """Read a URL as 'example dot com slash docs': no scheme or www, at most a short path."""
    scheme = _SCHEME.match(text, start, end)
    host_start = scheme.end() if scheme else start
    edits: list[Edit] = [(start, host_start, "")] if host_start > start else []
    host_end = host_start
    while host_end < end and text[host_end] not in "/?#":
        host_end += 1
    edits.extend(_spell_separators(text, host_start, host_end, ".:"))
    segments, pos = 0, host_end
    while pos < end and text[pos] == "/" and segments < _MAX_URL_PATH_SEGMENTS:
        seg_end = pos + 1
        while seg_end < end and text[seg_end] not in "/?#":
            seg_end += 1
        if seg_end == pos + 1:
            break
        edits.append((pos, pos + 1, _SPOKEN["/"]))
        edits.extend(_spell_separators(text, pos + 1, seg_end, "."))
        segments, pos = segments + 1, seg_end
    if pos < end:
        edits.append((pos, end, ""))
    return edits


def _email_edits(text: str, start: int, end: int) -> list[Edit]:
    """Read an email as 'jane dot doe at example dot co dot uk'."""
    edits: list[Edit] = []
    if text.startswith("mailto:", start):
        edits.append((start, start + 7, ""))
        start += 7
    return edits + _spell_separators(text, start, end, "._-+@")


def _spell_separators(text: str, start: int, end: int, separators: str) -> list[Edit]:
    return [(k, k + 1, _SPOKEN[text[k]]) for k in range(start, end) if text[k] in separators]


# --- Emoji and symbols ---------------------------------------------------------------------------------

# Pictographs, dingbats, flags, keycaps, skin tones, tag sequences, ZWJ and variation selectors. The model's
# fallback reads emoji by name ("party popper"), so they go entirely. ©, ® and ™ stay: misaki reads them.
_EMOJI = (
    "\U0001f000-\U0001faff\u2600-\u27bf\u2b00-\u2bff\u25a0-\u25ff\u231a\u231b\u2328\u23cf\u23e9-\u23f3"
    "\u23f8-\u23fa\u2934\u2935\u3030\u303d\u3297\u3299\u2139\u24c2\ufe00-\ufe0f\u200d\u20e3\U000e0000-\U000e007f"
)
# Invisible characters and control codes that misaki would choke on.
_INVISIBLE = "\u200b\u2060\ufeff\u00ad\x00-\x08\x0e-\x1f\x7f"
_SYMBOL = re.compile(
    rf"(?P<arrow>→|⟶|(?<=\s)->(?=\s))|(?P<about>(?<![\w~])~(?=\d))|(?P<drop>[{_EMOJI}{_INVISIBLE}]+)"
)
_SYMBOL_WORDS = {"arrow": " to ", "about": "about ", "drop": ""}


def _symbol_edits(text: str) -> list[Edit]:
    return [
        (match.start(), match.end(), _SYMBOL_WORDS[match.lastgroup or "drop"])
        for match in _SYMBOL.finditer(text)
    ]


# --- Whitespace ----------------------------------------------------------------------------------------

_BLANKS = re.compile(r"[^\S\n]+")


def _whitespace_edits(text: str) -> list[Edit]:
    """Collapse runs of spaces and tabs, and drop them at line edges; newlines stay for the planner."""
    edits: list[Edit] = []
    for match in _BLANKS.finditer(text):
        start, end = match.span()
        if start == 0 or end == len(text) or text[start - 1] == "\n" or text[end] == "\n":
            edits.append((start, end, ""))
        elif match.group() != " ":
            edits.append((start, end, " "))
    return edits
