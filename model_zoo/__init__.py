"""The zoo's data and training: the manifest (manifest.json), the small committed
checkpoints (checkpoints/), the training recipes (recipes/) and `robbench train`
(train.py). The lookup and architectures that load a model are robbench.zoo."""
