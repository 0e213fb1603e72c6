"""The README and docs/ against the tree and the code: links resolve, tables name what the code has."""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tts_api.ipc.counters import METRICS
from tts_api.server import parse_flags
from tts_api.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = [README, *sorted(DOCS.rglob("*.md"))]
README_MAX_LINES = 300  # a newcomer's ten minutes (issue 35)

_FENCE = re.compile(r"^(```|~~~)")
_CODE_SPAN = re.compile(r"(`+)(.+?)\1")
# [text](target "title") and ![alt](target); one level of brackets inside the text ([`x`] in a link).
_INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)")
_HTML = re.compile(r"""\b(?:href|src)\s*=\s*["']([^"']+)["']""")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_HTML_ANCHOR = re.compile(r"""<a\s+(?:name|id)\s*=\s*["']([^"']+)["']""")
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")
# This repository on GitHub, by any owner or fork: link its files relatively instead.
_THIS_REPO = re.compile(r"(?:github\.com|githubusercontent\.com)/[^/\s]+/tts-api(?:[/#?]|$)", re.IGNORECASE)


def _prose_lines(page: Path) -> Iterator[tuple[int, str]]:
    """The lines outside fenced code blocks, numbered from 1."""
    fenced = False
    for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), start=1):
        if _FENCE.match(line.lstrip()):
            fenced = not fenced
            continue
        if not fenced:
            yield number, line


def links(page: Path) -> list[tuple[int, str]]:
    """Every link target on a page (inline, image, reference, HTML), with its line; code is not prose."""
    found = []
    for number, line in _prose_lines(page):
        text = _CODE_SPAN.sub("", line)
        for pattern in (_INLINE_LINK, _REFERENCE, _HTML):
            found += [(number, m.group(1)) for m in pattern.finditer(text)]
    return found


def github_slug(heading: str) -> str:
    """GitHub's anchor for a heading: its text lower-cased, punctuation dropped, spaces made hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading anchors as its text
    text = re.sub(r"<[^>]+>", "", text).lower()
    return "".join(ch for ch in text if ch.isalnum() or ch in "-_ ").replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """The anchors GitHub gives a Markdown file: one per heading (repeats numbered -1, -2, …)."""
    seen: dict[str, int] = {}
    found = set()
    for _, line in _prose_lines(page):
        found.update(_HTML_ANCHOR.findall(line))
        heading = _HEADING.match(line)
        if heading is None:
            continue
        slug = github_slug(heading.group(2))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def _git_ignored(path: Path) -> bool:
    """Whether git ignores `path` (a build output: present here after `make test`, absent on GitHub)."""
    if not (ROOT / ".git").exists() or shutil.which("git") is None:
        return False
    run = subprocess.run(["git", "check-ignore", "-q", str(path)], cwd=ROOT, check=False)
    return run.returncode == 0


def link_problem(page: Path, target: str) -> str | None:
    """Why a relative link from `page` does not resolve, or None when it does (or is not relative)."""
    if _SCHEME.match(target) or target.startswith("//"):
        return None  # an external link; this repository's own are refused by another test
    if target.startswith("/"):
        return "absolute path: link the file relatively"
    path_part, _, anchor = target.partition("#")
    path_part = path_part.partition("?")[0]
    resolved = (page.parent / path_part).resolve() if path_part else page
    if not resolved.is_relative_to(ROOT):
        return "leaves the repository"
    if not resolved.exists():
        return "no such file"
    if _git_ignored(resolved):
        return "a git-ignored file, which is not on GitHub"
    if not anchor:
        return None
    if resolved.suffix == ".md":
        if anchor not in anchors(resolved):
            return f"no heading with anchor #{anchor} in {resolved.relative_to(ROOT)}"
    elif not re.fullmatch(r"L\d+(-L\d+)?", anchor):
        return f"#{anchor}: only line anchors (#L10) point into a file that is not Markdown"
    return None


def test_the_link_checker_finds_links_and_headings(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "# A `POST /v1/audio/speech` (reference)\n## Soak (`make soak`)\n## Soak (`make soak`)\n"
        "See [here](other.md#x) and ![img](a.png), not `[code](no.md)`.\n```\n[fenced](no.md)\n```\n"
        '[ref]: ref.md\n<img src="pic.png">\n',
        encoding="utf-8",
    )
    assert anchors(page) == {"a-post-v1audiospeech-reference", "soak-make-soak", "soak-make-soak-1"}
    assert [target for _, target in links(page)] == ["other.md#x", "a.png", "ref.md", "pic.png"]
    assert github_slug("Text planning: first audio fast") == "text-planning-first-audio-fast"
    assert github_slug("Voice agents (text streamed in)") == "voice-agents-text-streamed-in"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page: Path) -> None:
    broken = [
        f"{page.relative_to(ROOT)}:{line}: {target} ({problem})"
        for line, target in links(page)
        if (problem := link_problem(page, target)) is not None
    ]
    assert not broken, "\n".join(broken)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_absolute_links_to_this_repository(page: Path) -> None:
    absolute = [
        f"{page.relative_to(ROOT)}:{line}: {target}"
        for line, target in links(page)
        if _THIS_REPO.search(target) or target.startswith(("file:", "/"))
    ]
    assert not absolute, "link these relatively:\n" + "\n".join(absolute)


def test_every_docs_page_is_linked_from_the_readme() -> None:
    linked = {
        (README.parent / target.partition("#")[0]).resolve()
        for _, target in links(README)
        if not _SCHEME.match(target)
    }
    unlinked = [str(p.relative_to(ROOT)) for p in PAGES[1:] if p.resolve() not in linked]
    assert not unlinked, f"pages the README does not link: {unlinked}"


def test_the_readme_is_read_in_ten_minutes() -> None:
    lines = len(README.read_text(encoding="utf-8").splitlines())
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move detail to docs/"


# ----- tables against the code ---------------------------------------------------------------------------


def _table(page: Path, header: str) -> list[list[str]]:
    """The rows of the table whose header row starts with `header`, as lists of stripped cells."""
    lines = page.read_text(encoding="utf-8").splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith(header)), None)
    assert start is not None, f"{page.relative_to(ROOT)} has no table headed {header!r}"
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip().strip("|"))])
    return rows


def _code(cell: str) -> list[str]:
    return [m.group(2) for m in _CODE_SPAN.finditer(cell)]


def _flag_actions(monkeypatch: pytest.MonkeyPatch) -> dict[str, argparse.Action]:
    """server.py's flags and their argparse actions (`dest` is the setting: --max-pause, max_pause_s)."""
    parsers: list[argparse.ArgumentParser] = []

    def capture(self: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> argparse.Namespace:
        parsers.append(self)
        return argparse.Namespace()

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", capture)
    parse_flags([])
    (parser,) = parsers
    return {
        option: action for option, action in parser._option_string_actions.items() if action.dest != "help"
    }


CONFIG_HEADER = "| flag | environment | default | meaning |"


def test_the_configuration_table_names_every_setting_by_its_flag_and_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    prefix = Settings.model_config["env_prefix"]
    flags = _flag_actions(monkeypatch)
    rows = _table(README, CONFIG_HEADER)
    named: list[str] = []
    for flag_cell, env_cell, *_ in rows:
        (env,) = _code(env_cell) or [""]
        assert env.startswith(prefix), f"row {env_cell!r}: no {prefix}* variable"
        field = env.removeprefix(prefix).lower()
        assert field in Settings.model_fields, f"{env} is not a setting of tts_api/settings.py"
        named.append(field)
        for flag in _code(flag_cell):
            assert flag in flags, f"{flag} is not a flag of server.py"
            assert flags[flag].dest == field, f"{flag} sets {flags[flag].dest}, not {field} ({env})"
    assert len(named) == len(set(named)), "a setting has two rows"
    assert set(named) == set(Settings.model_fields), (
        f"settings without a row: {sorted(set(Settings.model_fields) - set(named))}"
    )
    in_table = {flag for flag_cell, *_ in rows for flag in _code(flag_cell)}
    missing = {action.dest for action in flags.values() if not set(action.option_strings) & in_table}
    assert not missing, f"flags of server.py the table does not name: {sorted(missing)}"


def _stated_default_matches(cell: str, default: object) -> bool:
    words = {"on": default is True, "off": default in (False, None), "none": default is None}
    if cell in words:
        return words[cell]
    (stated,) = _code(cell) if re.fullmatch(r"`[^`]+`", cell) else [None]
    if stated is None:
        # A default in words ("one per worker") is computed at run time; Settings holds None or 0 for it.
        return default is None or default == 0
    if isinstance(default, bool) or default is None:
        return False
    if isinstance(default, int | float):
        try:
            return float(stated) == float(default)
        except ValueError:
            return False
    if isinstance(default, Path):
        return Path(stated) == default
    return stated == str(default)


def test_the_configuration_tables_defaults_are_the_settings_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The model directory's default is computed from $XDG_CACHE_HOME: the table names the variable.
    monkeypatch.setenv("XDG_CACHE_HOME", "$XDG_CACHE_HOME")
    prefix = Settings.model_config["env_prefix"]
    wrong = []
    for _, env_cell, default_cell, *_ in _table(README, CONFIG_HEADER):
        (env,) = _code(env_cell)
        field = Settings.model_fields[env.removeprefix(prefix).lower()]
        default = field.get_default(call_default_factory=True)
        if not _stated_default_matches(default_cell, default):
            wrong.append(f"{env}: the table says {default_cell}, Settings says {default!r}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize(
    ("cell", "default", "matches"),
    [
        ("`8000`", 8000, True),
        ("`8001`", 8000, False),
        ("`0.5`", 0.5, True),
        ("`edf`", "fifo", False),
        ("on", True, True),
        ("on", False, False),
        ("off", None, True),
        ("none", "key", False),
        ("one per worker", None, True),
        ("one per worker", 2, False),
        ("`auto`", None, False),
    ],
)
def test_a_stated_default_is_compared_by_value(cell: str, default: object, matches: bool) -> None:
    assert _stated_default_matches(cell, default) is matches


def test_the_metrics_table_lists_the_metrics_the_server_exports() -> None:
    rows = _table(DOCS / "api.md", "| metric | type | meaning |")
    documented = {_code(name)[0].split("{")[0]: kind for name, kind, *_ in rows}
    assert documented == {name: kind for name, (kind, _) in METRICS.items()}
