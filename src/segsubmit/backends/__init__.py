"""Model backends: each turns config into a `Predictor` that maps a batch of uint8 RGB images
(N, 3, H, W) on its device to uint8 argmax label maps (N, H, W) at the same size."""

from .base import Predictor, PredictorSettings, resolve_device

BACKENDS = ("torchvision", "torchscript", "detectron2")


def load_predictor(backend, settings):
    """Build the predictor of `backend` ("torchvision", "torchscript" or "detectron2")."""
    if backend == "torchvision":
        from .torchvision_backend import load_torchvision

        return load_torchvision(settings)
    if backend == "torchscript":
        from .torchscript_backend import load_torchscript

        return load_torchscript(settings)
    if backend == "detectron2":
        from .detectron2_backend import load_detectron2

        return load_detectron2(settings)
    raise ValueError(f"model.backend: unknown backend {backend!r}; choose one of {BACKENDS}")


def worker_prepare(backend, settings, device):
    """The `prepare` (see `Predictor`) that `load_predictor(backend, settings)` will give its
    predictor on `device`, known without building the model: the DataLoader workers can start
    decoding while the model loads."""
    if backend == "detectron2":
        from .detectron2_backend import worker_prepare as detectron2_worker_prepare

        return detectron2_worker_prepare(settings, device)
    return None


__all__ = [
    "BACKENDS",
    "Predictor",
    "PredictorSettings",
    "load_predictor",
    "resolve_device",
    "worker_prepare",
]
