"""LitServe's inference workers: the LitAPI, its loop, the scheduler, the cancel watch, the runtime."""
