"""Training, evaluation and experiments for the chair models: `python -m train <command>`."""
