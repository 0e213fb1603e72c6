"""Programs that use a running server over HTTP (the CLI, the Wyoming bridge): no torch, PyAV or kokoro."""
