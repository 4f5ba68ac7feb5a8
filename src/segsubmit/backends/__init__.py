"""Model backends: each turns config into a `Predictor` that maps a batch of uint8 RGB images
(N, 3, H, W) on its device to uint8 argmax label maps (N, H, W) at the same size. Importing this
package registers every backend; their heavy dependencies are imported only when one loads."""

from ..errors import SegsubmitError
from . import detectron2_backend, torchscript_backend, torchvision_backend  # noqa: F401 register
from .base import BACKENDS, Predictor, PredictorSettings, resolve_device


def backend_named(name):
    """The registered `Backend` class called `name`."""
    if name not in BACKENDS:
        raise SegsubmitError(
            f"model.backend: unknown backend {name!r}; choose one of {sorted(BACKENDS)}"
        )
    return BACKENDS[name]


def load_predictor(backend, settings, device=None):
    """The predictor of `backend` on `device` (default: `resolve_device(settings.device)`)."""
    return backend_named(backend).load(settings, device or resolve_device(settings.device))


def host_transform(backend, settings, device):
    """What `backend`'s DataLoader workers do to each decoded image (see `Backend`)."""
    return backend_named(backend).host_transform(settings, device)


__all__ = [
    "BACKENDS",
    "Predictor",
    "PredictorSettings",
    "backend_named",
    "host_transform",
    "load_predictor",
    "resolve_device",
]
