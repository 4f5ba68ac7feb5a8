"""Model backends. Each is a declaration module `<name>_backend.py` (a `plugins.Backend`
subclass: its config section, env, packages, install hint; no heavy imports) and, where it
needs one, an implementation module imported only when its model loads. A `Predictor`
(`backends.base`) maps a batch of uint8 RGB images (N, 3, H, W) on its device to uint8 argmax
label maps (N, H, W) at the same size."""
