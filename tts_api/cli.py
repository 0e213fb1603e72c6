"""`tts-api`: speak text through a running server, list its voices, run the server or the Wyoming bridge.

A thin HTTP client (httpx): it never imports torch, PyAV or kokoro. Exit codes, for scripts:
0 done; 1 the server failed, is overloaded, broke the stream, or none answers; 2 bad arguments, or the
server rejected the request (4xx: empty text, unknown voice, wrong API key); 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, get_args

import httpx

from .clients.http import (
    DEFAULT_SERVER,
    VOICES_PATH,
    ClientError,
    RequestRejected,
    VoiceList,
    auth_headers,
    check_response,
    transport_failure,
)
from .clients.speech import Audio, Words, speech_events
from .formats import WAV_HEADER_BYTES, ResponseFormat, wav_size_fields
from .terminal import ProgressBar, is_terminal
from .voices import LANGUAGE_NAMES

__all__ = ["EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_USAGE", "main"]

EXIT_OK = 0
EXIT_FAILED = 1  # the server failed or none answers: retrying later may help
EXIT_USAGE = 2  # the arguments or the request are wrong: retrying the same will not help
EXIT_INTERRUPTED = 130  # Ctrl-C, as shells report SIGINT

LONG_TEXT_CHARS = 200  # shorter texts finish before a progress bar would tell anything
CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 300.0  # a request may wait in the server's queue behind others (--timeout)
SUFFIX_FORMATS: dict[str, ResponseFormat] = {
    **{f".{fmt}": fmt for fmt in get_args(ResponseFormat)},
    ".ogg": "opus",
    ".m4a": "aac",
}


class UsageError(Exception):
    """Raised when the command line cannot be carried out as given."""


def _server_options(parser: argparse.ArgumentParser, *, defaults: bool) -> None:
    # Accepted before and after the command; only the top level holds defaults, or a subcommand's
    # default would overwrite a value given before it.
    parser.add_argument(
        "--server",
        default=os.environ.get("TTS_SERVER", DEFAULT_SERVER) if defaults else argparse.SUPPRESS,
        help=f"the server's URL (default: $TTS_SERVER or {DEFAULT_SERVER})",
    )
    parser.add_argument(
        "--api-key",
        default=os.environ.get("TTS_API_KEY") if defaults else argparse.SUPPRESS,
        help="the server's API key, if it needs one (default: $TTS_API_KEY)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=READ_TIMEOUT_S if defaults else argparse.SUPPRESS,
        metavar="SECONDS",
        help=f"seconds to wait for audio: a busy server queues requests (default {READ_TIMEOUT_S:g})",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tts-api",
        description="Speak text with a tts-api server (Kokoro-82M).",
        epilog="exit codes: 0 ok, 1 server failed or unreachable, 2 bad arguments or request rejected, "
        "130 interrupted",
    )
    _server_options(parser, defaults=True)
    server = argparse.ArgumentParser(add_help=False)
    _server_options(server, defaults=False)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    say = commands.add_parser("say", parents=[server], help="synthesize text into an audio file or stdout")
    say.add_argument("text", nargs="?", help="the text; omit it or give - to read standard input")
    say.add_argument(
        "-o", "--output", help="audio file to write, - for stdout (default: stdout when it is not a terminal)"
    )
    say.add_argument("-v", "--voice", default="af_heart", help="voice id, OpenAI name or blend (af_heart)")
    say.add_argument("-s", "--speed", type=float, default=1.0, help="0.25 to 4.0 (default 1.0)")
    say.add_argument(
        "-f",
        "--format",
        choices=get_args(ResponseFormat),
        help="audio format (default: from the output file's suffix, else mp3)",
    )
    say.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    voices = commands.add_parser("voices", parents=[server], help="list the server's voices")
    voices.add_argument("--json", action="store_true", help="print the server's JSON as it is")

    commands.add_parser(
        "serve",
        help="run the server (flags as for `python server.py`; `tts-api serve --help`)",
        add_help=False,
    ).add_argument("args", nargs=argparse.REMAINDER)

    wyoming = commands.add_parser(
        "wyoming", parents=[server], help="serve the Wyoming protocol (Home Assistant) for a server"
    )
    wyoming.add_argument(
        "--host",
        help="address to listen on (default 0.0.0.0; 127.0.0.1 with an API key, which Wyoming clients cannot "
        "send: name a host to serve it anyway)",
    )
    wyoming.add_argument("--port", type=int, default=10200, help="TCP port (default 10200)")
    wyoming.add_argument("--voice", default="af_heart", help="voice when a request names none")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the `tts-api` command line; return its exit code."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["serve"]:  # every flag after it is the server's, in its order (argparse would mix them)
        return serve(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        if args.command == "say":
            return say(args)
        if args.command == "voices":
            return list_voices(args)
        if args.command == "wyoming":
            from .wyoming.service import run_service

            return run_service(
                args.server,
                wyoming_host(args.host, args.api_key),
                args.port,
                voice=args.voice,
                api_key=args.api_key,
                read_timeout_s=args.timeout,
            )
        return serve(args.args)
    except UsageError as exc:
        print(f"tts-api: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except RequestRejected as exc:
        print(f"tts-api: the server rejected the request: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ClientError as exc:
        print(f"tts-api: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader of stdout went away (a player closed, `| head`): not everything was delivered.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return EXIT_FAILED


@contextlib.contextmanager
def _client(args: argparse.Namespace) -> Iterator[httpx.Client]:
    server = args.server.rstrip("/")
    timeout = httpx.Timeout(args.timeout, connect=CONNECT_TIMEOUT_S)
    with httpx.Client(base_url=server, headers=auth_headers(args.api_key), timeout=timeout) as client:
        try:
            yield client
        except httpx.HTTPError as exc:  # refused, nothing within the timeout, a broken connection
            raise transport_failure(client, exc) from exc


# ----- say -------------------------------------------------------------------------------------------


def _read_text(args: argparse.Namespace) -> str:
    if args.text not in (None, "-"):
        return str(args.text)
    if args.text is None and is_terminal(sys.stdin):
        raise UsageError('give the text as an argument (tts-api say "Hello") or on standard input')
    return sys.stdin.read()


def _output_format(args: argparse.Namespace) -> ResponseFormat:
    if args.format:
        return args.format  # type: ignore[no-any-return]
    if args.output and args.output != "-":
        return SUFFIX_FORMATS.get(Path(args.output).suffix.lower(), "mp3")
    return "mp3"  # OpenAI: response_format defaults to mp3


def say(args: argparse.Namespace) -> int:
    text = _read_text(args)
    fmt = _output_format(args)
    output = args.output or ("-" if not is_terminal(sys.stdout) else None)
    if output is None:
        raise UsageError("will not write audio to a terminal: give -o FILE, or pipe the output (-o -)")
    body = {
        "model": "kokoro",
        "input": text,
        "voice": args.voice,
        "speed": args.speed,
        "response_format": fmt,
    }
    show_bar = not args.quiet and len(text) >= LONG_TEXT_CHARS and is_terminal(sys.stderr)
    bar = ProgressBar("tts-api say", sys.stderr) if show_bar else None
    if bar is not None:
        bar.update(0.0, "waiting for the first audio")
    try:
        with _client(args) as client:
            if output == "-":
                _stream(speech_events(client, body), sys.stdout.buffer, len(text), bar)
            else:
                _write_file(speech_events(client, body), Path(output), fmt, len(text), bar)
    finally:
        if bar is not None:
            bar.close()
    return EXIT_OK


def _stream(events: Iterator[Audio | Words], out: BinaryIO, chars: int, bar: ProgressBar | None) -> int:
    """Write the audio as it comes (a player reading the pipe starts at once); return the bytes written."""
    written = 0
    for event in events:
        if isinstance(event, Audio):
            out.write(event.data)
            out.flush()
            written += len(event.data)
        elif bar is not None and event.words:
            # Word timings say how far through the text synthesis is (English voices send them).
            last = event.words[-1]
            bar.update(last["char_end"] / max(chars, 1), f"{last['end']:.1f} s of audio")
    if bar is not None:
        bar.finish("done")
    return written


def _write_file(
    events: Iterator[Audio | Words], path: Path, fmt: ResponseFormat, chars: int, bar: ProgressBar | None
) -> None:
    """Write to a temporary file beside `path` and rename it into place: a failure leaves no short file."""
    if not path.parent.is_dir():
        raise UsageError(f"cannot write {path}: {path.parent} is not a directory")
    fd, partial = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(fd, "w+b") as out:
            written = _stream(events, out, chars, bar)
            if fmt == "wav" and written >= WAV_HEADER_BYTES:
                _fix_wav_sizes(out, written)
        os.replace(partial, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(partial)
        raise


def _fix_wav_sizes(out: BinaryIO, size: int) -> None:
    """A streamed WAV says "unknown length"; a file can say the truth (stdlib `wave` needs it)."""
    for offset, field in wav_size_fields(size):
        out.seek(offset)
        out.write(field)


# ----- voices ----------------------------------------------------------------------------------------


def list_voices(args: argparse.Namespace) -> int:
    with _client(args) as client:
        response = client.get(VOICES_PATH)
        check_response(response)
    data = response.json()
    if args.json:
        print(json.dumps(data, indent=2))
        return EXIT_OK
    listing = VoiceList.from_json(data)
    for code, tag in listing.languages.items():
        voices = [v for v in listing.voices if v.lang_code == code]
        if not voices:
            continue
        print(f"{LANGUAGE_NAMES.get(code, code)} ({tag})")
        for voice in voices:
            note = "" if voice.available else "  (language not installed on the server)"
            print(f"  {voice.id:<14} {voice.gender}{note}")
    print("OpenAI voice names")
    for alias, target in listing.aliases.items():
        print(f"  {alias:<14} -> {target}")
    print("Blends: af_bella+af_sky (equal parts) or af_bella(2)+af_sky(1)")
    return EXIT_OK


# ----- serve -----------------------------------------------------------------------------------------


def wyoming_host(host: str | None, api_key: str | None) -> str:
    """Where the standalone Wyoming service listens: as the server's own, loopback when it holds a key that
    its clients could otherwise use without knowing it, unless the operator named a host."""
    if host is not None:
        return host
    return "127.0.0.1" if api_key else "0.0.0.0"


def serve(argv: list[str]) -> int:
    """Run the installed server (imported only now: the client commands never load its dependencies)."""
    from .server import main as serve_main

    return serve_main(argv, prog="tts-api serve")


if __name__ == "__main__":
    raise SystemExit(main())
