"""TorchScript modules: `torch.jit.load(weights)`, fed normalized float images."""

import torch

from ..errors import SegsubmitError
from .base import Backend, NormalizedModelPredictor, check_class_count, register_backend


@register_backend("torchscript")
class TorchscriptBackend(Backend):
    @staticmethod
    def load(settings, device):
        return load_torchscript(settings, device)


def load_torchscript(settings, device):
    """Predictor for a scripted/traced module; its class count is checked on a tiny input."""
    try:
        module = torch.jit.load(settings.weights, map_location="cpu")
    except (RuntimeError, ValueError) as err:
        raise SegsubmitError(
            f"{settings.weights}: not a TorchScript file ({err.__class__.__name__}); "
            "save with torch.jit.save(torch.jit.script(model), path)"
        ) from err
    predictor = NormalizedModelPredictor(module, settings, device)
    probe = torch.zeros((1, 3, 64, 64), dtype=torch.uint8, device=device)
    with torch.inference_mode():
        found_classes = predictor.logits(probe).shape[1]
    check_class_count(settings.weights, found_classes, settings.num_classes)
    return predictor
