"""What the processes share: the manager and its objects (cancel board, counters) and the frame protocol."""
