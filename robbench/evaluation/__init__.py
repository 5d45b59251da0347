"""Evaluating a model: the evaluator (model -> attacks -> per-sample records -> row),
scoring, sharding, the model checks (diagnostics), third-party models (external),
checkpoint import, and the gate (`robbench check`)."""
