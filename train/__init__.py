"""Training and evaluation of the chair models: `python -m train <command>`."""
