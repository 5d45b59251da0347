"""Analyses of trained models (METHODS §4)."""
