"""The TorchScript backend's implementation: `torch.jit.load(weights)`, fed normalized float
images."""

import torch

from ..errors import SegsubmitError
from .base import NormalizedModelPredictor, probe_predictor


def load_torchscript(settings, device):
    """Predictor for a scripted/traced module; its output is checked on a tiny input."""
    try:
        module = torch.jit.load(settings.weights, map_location="cpu")
    except (RuntimeError, ValueError) as err:
        raise SegsubmitError(
            f"{settings.weights}: not a TorchScript file ({err.__class__.__name__}); "
            "save with torch.jit.save(torch.jit.script(model), path)"
        ) from err
    predictor = NormalizedModelPredictor(module, settings, device)
    probe_predictor(predictor, [(64, 64)])
    return predictor
