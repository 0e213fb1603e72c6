"""Runs in LitServe's inference workers: the LitAPI, the synthesis engine, encoders, seams, timestamps."""
