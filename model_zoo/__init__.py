"""Architectures, training recipes, the model manifest and small checkpoints."""
