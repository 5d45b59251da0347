"""Measurements too long for the test suite."""
