"""Models robbench can load: the architectures, the checkpoint format, and the zoo lookup
(robbench.zoo.lookup: id -> model_zoo/manifest.json entry -> architecture -> checkpoint)."""
