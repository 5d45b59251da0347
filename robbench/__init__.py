"""robbench: robustness evaluation for clustering- and prototype-based defenses."""

__version__ = "0.1.0"
