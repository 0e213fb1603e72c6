"""tts-api: an OpenAI-compatible streaming text-to-speech server for Kokoro-82M on LitServe."""

__version__ = "0.1.0"
