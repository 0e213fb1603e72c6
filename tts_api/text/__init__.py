"""Pure text work, no model and no I/O: normalization with span mapping, segmentation, chunk planning."""
