"""Training: the recipe and its options, datasets and their file formats, the torch loop, records and
checkpoints of a run, and DDP."""
