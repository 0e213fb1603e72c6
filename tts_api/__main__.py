"""`python -m tts_api [flags]`: run the server, as `tts-api serve` does."""

from tts_api.server import main

# Guarded: LitServe's workers are spawned, and a spawned child imports this module again (as __mp_main__).
if __name__ == "__main__":
    raise SystemExit(main(prog="python -m tts_api"))
