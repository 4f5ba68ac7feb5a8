"""The torchvision backend's implementation: an architecture built untrained, its state dict
loaded strictly."""

import torchvision

from ..errors import SegsubmitError
from .base import NormalizedModelPredictor, key_mismatch_line, load_state_dict


def build_torchvision_model(architecture, num_classes):
    """An untrained torchvision segmentation model with `num_classes` outputs."""
    segmentation_models = torchvision.models.list_models(module=torchvision.models.segmentation)
    if architecture not in segmentation_models:
        raise SegsubmitError(
            f"model.architecture: {architecture!r} is not a torchvision segmentation model; "
            f"choose one of {', '.join(segmentation_models)}"
        )
    return torchvision.models.get_model(
        architecture, weights=None, weights_backbone=None, num_classes=num_classes
    )


def load_torchvision(settings, device):
    """Predictor for `model.torchvision.architecture` with `settings.weights` loaded strictly."""
    architecture = settings.options["architecture"]
    model = build_torchvision_model(architecture, settings.num_classes)
    state_dict = load_state_dict(settings.weights)
    state_dict = {k: v for k, v in state_dict.items() if not k.startswith("aux_classifier.")}
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as err:
        raise SegsubmitError(
            f"{settings.weights}: weights do not fit {architecture} with "
            f"{settings.num_classes} classes ({key_mismatch_line(state_dict, model)})"
        ) from err
    return NormalizedModelPredictor(model, settings, device)
