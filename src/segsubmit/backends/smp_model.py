"""The smp backend's implementation.

Padding rule: SMP 0.6 models other than Unet (`requires_divisible_input_shape`) refuse inputs
whose sides are not multiples of `model.encoder.output_stride` (32 for most encoders, 16 or 8
for dilated ones); Unet takes any size. For a model that would refuse, each batch is padded at
the bottom and right to the next multiple, with zeros after normalisation (the mean colour),
and the logits are cropped back to the image before argmax. Sizes that are already multiples,
and every size for Unet, are the model's own forward pass unchanged.
"""

import torch

from ..errors import SegsubmitError
from .base import (
    NormalizedModelPredictor,
    mismatch_summary,
    model_logits,
    read_checkpoint,
    state_dict_mismatch,
    unwrap_state_dict,
)
from .smp_backend import INSTALL_HINT


def require_smp():
    """segmentation_models_pytorch, or one line saying how to install it."""
    try:
        import segmentation_models_pytorch as smp
    except ImportError as err:
        raise SegsubmitError(
            f"model.backend: segmentation_models_pytorch is not installed; {INSTALL_HINT}"
        ) from err
    return smp


def build_smp_model(architecture, encoder, num_classes, kwargs=None):
    """An untrained SMP model (no pretrained encoder weights: nothing is downloaded)."""
    smp = require_smp()
    architectures = [model.__name__ for model in smp._MODEL_ARCHITECTURES]
    if architecture.lower() not in smp.MODEL_ARCHITECTURES_MAPPING:
        raise SegsubmitError(
            f"model.smp.architecture: {architecture!r} is not an SMP architecture; choose one of "
            f"{', '.join(architectures)}"
        )
    try:
        return smp.create_model(
            architecture,
            encoder_name=encoder,
            encoder_weights=None,
            classes=num_classes,
            **(kwargs or {}),
        )
    except (KeyError, ValueError, TypeError, AssertionError, RuntimeError) as err:
        message = str(err).strip().splitlines()[0][:200] if str(err).strip() else ""
        raise SegsubmitError(
            f"model.smp: cannot build {architecture} with encoder {encoder!r} and kwargs "
            f"{kwargs or {}} ({type(err).__name__}: {message})"
        ) from err


def divisor(model):
    """What the model needs input sides to be multiples of (1: any size)."""
    if getattr(model, "requires_divisible_input_shape", True):
        return int(model.encoder.output_stride)
    return 1


def pad_to_multiple(batch, multiple):
    """Zero-pad (N, C, H, W) at the bottom and right to sides that are multiples of `multiple`."""
    height, width = batch.shape[-2:]
    pad_height, pad_width = -height % multiple, -width % multiple
    if not pad_height and not pad_width:
        return batch
    return torch.nn.functional.pad(batch, (0, pad_width, 0, pad_height))


class SmpPredictor(NormalizedModelPredictor):
    """An SMP model fed normalised images padded by the module's rule, logits cropped back."""

    def __init__(self, module, settings, device):
        super().__init__(module, settings, device)
        self.multiple = divisor(module)

    def logits(self, images):
        height, width = images.shape[-2:]
        batch = pad_to_multiple((images.float() - self.mean) / self.std, self.multiple)
        if self.channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        scores = model_logits(self.module(batch), self.output_keys, self.source)
        if isinstance(scores, torch.Tensor) and scores.ndim == 4:
            scores = scores[..., :height, :width]
        return scores


def likely_cause(missing, unexpected, other_shape, options, num_classes):
    """The likeliest reason a checkpoint does not fit, from where its keys differ."""
    differing = [key for key, _, _ in other_shape] + missing + unexpected
    parts = {key.split(".")[0] for key in differing}
    if other_shape and parts == {"segmentation_head"}:
        theirs = other_shape[0][1][0] if other_shape[0][1] else "?"
        return (
            f"trained for {theirs} classes, config `classes` lists {num_classes}; use the "
            "matching classes"
        )
    if unexpected and not missing and parts == {"classification_head"}:
        return "trained with aux_params: set model.smp.kwargs.aux_params as in training"
    if parts == {"encoder"}:
        return f"trained with another encoder than model.smp.encoder {options['encoder']!r}"
    return (
        f"not a {options['architecture']}/{options['encoder']} state dict as configured: check "
        "model.smp.architecture, encoder and kwargs (encoder_depth, decoder_channels, ...)"
    )


def load_checkpoint(model, weights_path, options, num_classes):
    """Load a checkpoint as competitors save it (`base.unwrap_state_dict`) strictly; refuse one
    that does not fit in one line: counts and first keys, and the likely cause."""
    state_dict = unwrap_state_dict(
        read_checkpoint(weights_path), model.state_dict().keys(), weights_path
    )
    missing, unexpected, other_shape = state_dict_mismatch(state_dict, model)
    if not other_shape:  # SMP's load_state_dict renames old timm-encoder keys first
        result = model.load_state_dict(dict(state_dict), strict=False)
        missing, unexpected = list(result.missing_keys), list(result.unexpected_keys)
    if missing or unexpected or other_shape:
        raise SegsubmitError(
            f"{weights_path}: weights do not fit {options['architecture']} with encoder "
            f"{options['encoder']} and {num_classes} classes: "
            f"{mismatch_summary(missing, unexpected, other_shape)}; likely cause: "
            f"{likely_cause(missing, unexpected, other_shape, options, num_classes)}"
        )


def load_smp(settings, device):
    """Predictor for `model.smp` with `settings.weights` loaded strictly."""
    options = settings.options
    model = build_smp_model(
        options["architecture"], options["encoder"], settings.num_classes, options["kwargs"]
    )
    load_checkpoint(model, settings.weights, options, settings.num_classes)
    return SmpPredictor(model, settings, device)
