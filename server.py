"""Run the tts-api server from a checkout: `python server.py [--port 8000] ...` (the installed package's
`tts-api serve` and `python -m tts_api` are the same); flags override `TTS_*` variables."""

from tts_api.server import main

if __name__ == "__main__":
    raise SystemExit(main(prog="server.py"))
