"""The web page at `/`, driven in a real headless Chromium (Debian's package) through Playwright.

The page plays what it receives through Web Audio; `window.ttsState` counts what reached the player.
A screenshot of the page mid-sentence goes to build/screenshots/web-page.png (git-ignored; the README
shows it).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from playwright import sync_api

from tests.audio_check import decode
from tests.system import require_program
from tts_api.processes import ROOT, ServerProcess

CHROMIUM = Path("/usr/bin/chromium")

pytestmark = pytest.mark.server

SCREENSHOT = ROOT / "build" / "screenshots" / "web-page.png"
# Chromium exactly as installed; never a browser that Playwright would download.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]
TEXT = "Hello world. This is a short test of the page, with several words."
TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def browser() -> Iterator[sync_api.Browser]:
    chromium = require_program(str(CHROMIUM) if CHROMIUM.exists() else None, str(CHROMIUM), "chromium")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: sync_api.Browser, tiny_server: ServerProcess) -> Iterator[sync_api.Page]:
    """The page, loaded with its voice list; fails the test if it requested anything from elsewhere."""
    # The page's policy forbids eval, which Playwright's wait_for_function uses; the test bypasses it.
    context = browser.new_context(bypass_csp=True, accept_downloads=True)
    page = context.new_page()
    requests: list[str] = []
    errors: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{tiny_server.url}/")
    page.wait_for_selector("body[data-ready=true]", timeout=TIMEOUT_MS)
    yield page
    context.close()
    assert errors == [], f"the page raised: {errors}"
    elsewhere = [url for url in requests if not url.startswith(tiny_server.url) and url != "data:,"]
    assert elsewhere == [], f"the page fetched from outside the server: {elsewhere}"


def speak(page: sync_api.Page, text: str) -> None:
    page.fill("#text", text)
    page.click("#speak")


def test_the_page_lists_voices_grouped_by_language_with_openai_names(page: sync_api.Page) -> None:
    groups = page.eval_on_selector_all("#voice optgroup", "gs => gs.map(g => g.label)")
    assert groups[:2] == ["American English (en-us)", "British English (en-gb)"]
    assert "OpenAI voice names" in groups
    values = page.eval_on_selector_all("#voice option", "os => os.map(o => o.value)")
    assert {"af_heart", "bf_emma", "alloy", "nova"} <= set(values)
    assert page.input_value("#voice") == "af_heart"


def test_speech_streams_into_the_player_and_the_spoken_word_is_highlighted(
    page: sync_api.Page, tiny_expected: Callable[..., int]
) -> None:
    speak(page, TEXT)
    page.wait_for_function("window.ttsState.done", timeout=TIMEOUT_MS)
    state = page.evaluate("window.ttsState")
    assert state["error"] is None
    # Every sample the server made reached the player, in more than one piece (the planner's first
    # chunk is a short clause), so playback began before the whole audio was there.
    assert state["scheduledSamples"] == tiny_expected(TEXT)
    assert state["deltas"] >= 2
    assert re.fullmatch(r"\d+\.\d\d s", page.inner_text("#first-audio"))

    page.wait_for_function("window.ttsState.highlighted.length >= 3", timeout=TIMEOUT_MS)
    marked = page.inner_text("#reading mark")
    page.screenshot(path=str(SCREENSHOT))
    state = page.evaluate("window.ttsState")
    words = state["words"]
    assert [w["word"] for w in words] == [TEXT[w["char_start"] : w["char_end"]] for w in words]
    assert marked in {w["word"] for w in words}
    # The highlight follows playback: word after word, never back.
    assert state["highlighted"] == sorted(state["highlighted"])
    assert len(set(state["highlighted"])) >= 3


def test_the_wav_download_is_the_audio_that_was_played(page: sync_api.Page, tmp_path: Path) -> None:
    speak(page, "Short download test.")
    page.wait_for_function("window.ttsState.done", timeout=TIMEOUT_MS)
    samples = page.evaluate("window.ttsState.scheduledSamples")
    page.select_option("#format", "wav")
    with page.expect_download(timeout=TIMEOUT_MS) as download:
        page.click("#download")
    saved = tmp_path / "speech.wav"
    download.value.save_as(saved)
    data = saved.read_bytes()
    assert data[:4] == b"RIFF" and data[8:16] == b"WAVEfmt "
    assert int.from_bytes(data[40:44], "little") == samples * 2 == len(data) - 44


def test_an_mp3_download_is_encoded_by_the_server(page: sync_api.Page, tmp_path: Path) -> None:
    speak(page, "Short download test.")
    page.wait_for_function("window.ttsState.done", timeout=TIMEOUT_MS)
    seconds = page.evaluate("window.ttsState.scheduledSamples") / 24_000
    page.select_option("#format", "mp3")
    with page.expect_download(timeout=TIMEOUT_MS) as download:
        page.click("#download")
    saved = tmp_path / "speech.mp3"
    download.value.save_as(saved)
    audio, rate = decode(saved.read_bytes(), "mp3")
    assert rate == 24_000
    assert len(audio) / rate == pytest.approx(seconds, abs=0.1)


@pytest.mark.parametrize(
    ("text", "blend"),
    [("", None), ("Hello there.", "af_heart+af_nobody")],
    ids=["empty-text", "unknown-voice-in-a-blend"],
)
def test_bad_input_shows_the_servers_own_message(
    page: sync_api.Page, tiny_server: ServerProcess, text: str, blend: str | None
) -> None:
    if blend is not None:
        page.select_option("#voice", "__blend__")
        page.fill("#blend", blend)
    speak(page, text)
    page.wait_for_function("window.ttsState.error !== null", timeout=TIMEOUT_MS)
    expected = httpx.post(
        f"{tiny_server.url}/v1/audio/speech",
        json={"input": text, "voice": blend or "af_heart", "response_format": "pcm", "stream_format": "sse"},
        timeout=30,
    )
    assert expected.status_code == 400
    assert page.inner_text("#error") == expected.json()["error"]["message"]
    assert page.is_visible("#error")
    assert page.evaluate("window.ttsState.scheduledSamples") == 0


def test_speak_as_i_type_speaks_a_sentence_before_the_next_one_is_typed(page: sync_api.Page) -> None:
    """The box on: each word goes over the ElevenLabs socket as it is typed; the first sentence is spoken
    once the next word shows it ended (no flush, the text unfinished); Enter and unchecking speak the rest."""
    frames: list[dict[str, object]] = []
    page.on("websocket", lambda ws: ws.on("framesent", lambda payload: frames.append(json.loads(payload))))
    page.fill("#text", "")
    page.check("#live")
    page.wait_for_function("window.ttsState.status === 'listening'", timeout=TIMEOUT_MS)
    page.focus("#text")
    page.keyboard.type("Hello world. This is", delay=5)
    page.wait_for_function("window.ttsState.deltas > 0", timeout=TIMEOUT_MS)
    sent = page.evaluate("window.ttsState.sent")
    assert not any(m.get("flush") for m in sent), "spoken before any flush"
    assert "".join(m.get("text", "") for m in sent[1:]) == "Hello world. This "  # "is" is still being typed

    page.keyboard.type(" a test of typing", delay=5)
    page.keyboard.press("Enter")
    page.uncheck("#live")
    page.wait_for_function("window.ttsState.done", timeout=TIMEOUT_MS)
    state = page.evaluate("window.ttsState")
    assert state["error"] is None and state["deltas"] >= 2 and state["scheduledSamples"] > 0
    sent = state["sent"]
    assert sent[0] == {"text": " ", "context_id": "page-1", "voice_settings": {"speed": 1}}
    assert "".join(m.get("text", "") for m in sent[1:]) == "Hello world. This is a test of typing\n"
    assert sent[-2:] == [
        {"context_id": "page-1", "flush": True},
        {"context_id": "page-1", "close_context": True},
    ]
    # What the page says it sent is what went over the socket (keepalives apart).
    assert [f for f in frames if f != {"text": ""}] == sent
