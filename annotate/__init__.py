"""annotate: turns samples' ground truth into prompts and targets, checks them,
and holds the dataset inspection CLI (``python -m annotate``)."""
