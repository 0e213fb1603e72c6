"""The synthesis core: engines, vocoders, seams, timestamps, encoders. No LitServe, no HTTP."""
