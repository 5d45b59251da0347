"""Analyses of trained models (METHODS §4), one module per analysis; `robbench analyze
--what W` runs `ANALYSES[W]`'s `analyze(model_ids, options)`."""

from __future__ import annotations

import importlib

ANALYSES: dict[str, str] = {
    "radius": "robbench.analysis.radius",  # certified radius / accuracy (§4.1); --synthetic: 2D experiment
    "match-rate": "robbench.analysis.match_rate",  # Ward-cluster match rate, clean / PGD / DDN (§4.2)
    "cosine": "robbench.analysis.cosine",  # feature cosine to the predicted centre, MAT / MMC (§4.2)
    "weight-corr": "robbench.analysis.weight_corr",  # linearised W and C (§4.3)
    "feature-dist": "robbench.analysis.feature_dist",  # feature distance matrix F (§4.3)
    "confusion": "robbench.analysis.confusion",  # attack confusion matrix M (§4.3)
    "curve": "robbench.analysis.curve",  # robust accuracy vs eps, PGD-20, several models
    "kmeans-head": "robbench.analysis.kmeans_head",  # k-means head on the features (ClusTR app. B.1)
}


def run_analysis(what: str, model_ids: list[str], options):
    return importlib.import_module(ANALYSES[what]).analyze(model_ids, options)
