"""The tts-api benchmark: the real server against the bare Kokoro pipeline, in one run (`make bench`)."""
