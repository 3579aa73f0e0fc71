"""A turn's life: guard, lock, history, rounds of model and tools, checkpoints, the final commit."""
