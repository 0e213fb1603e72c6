"""The Wyoming service (Home Assistant's voice protocol): a TCP bridge to the server's own HTTP API.

It runs as its own process (`python server.py --wyoming-port N` starts it as a child, `tts-api wyoming`
runs it alone) and never imports torch, PyAV or kokoro: audio comes from the server's workers over HTTP.
"""
