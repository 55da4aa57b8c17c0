"""One-off experiments whose figures the model card quotes; each runs as `python -m train.experiments.<name>`."""
