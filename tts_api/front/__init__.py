"""Runs in the HTTP processes, on the event loop: validation, admission, relaying audio, the extra routes.

Never imports torch, PyAV or kokoro (a test proves it): those load only in the inference workers.
"""
