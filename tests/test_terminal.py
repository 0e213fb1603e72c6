"""The terminal progress bar: drawn in place, only forward, ended cleanly."""

from __future__ import annotations

import io

from tts_api.terminal import ProgressBar, is_terminal


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_only_a_tty_is_a_terminal() -> None:
    assert is_terminal(Terminal())
    assert not is_terminal(io.StringIO())
    closed = io.StringIO()
    closed.close()
    assert not is_terminal(closed)


def test_the_bar_redraws_one_line_and_ends_it() -> None:
    screen = Terminal()
    bar = ProgressBar("build", screen, width=10)
    bar.update(0.25, "download")
    bar.update(0.5, "convert")
    bar.finish("done")
    frames = screen.getvalue().split("\r")[1:]
    assert frames[0].startswith("build [##........]  25%  download")
    assert frames[1].startswith("build [#####.....]  50%  convert")
    assert frames[-1].startswith("build [##########] 100%  done")
    assert screen.getvalue().endswith("\x1b[K\n")
    assert screen.getvalue().count("\n") == 1


def test_fractions_are_clamped_and_close_is_idempotent() -> None:
    screen = Terminal()
    bar = ProgressBar("x", screen, width=4)
    bar.update(7.0, "over")
    assert "[####] 100%" in screen.getvalue()
    bar.close()
    bar.close()
    assert screen.getvalue().count("\n") == 1


def test_nothing_is_written_until_something_is_shown() -> None:
    screen = Terminal()
    ProgressBar("x", screen).close()
    assert screen.getvalue() == ""
