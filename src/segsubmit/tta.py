"""Test-time augmentation for every backend whose predictor keeps the base class's
`Predictor.scores` path (images in, logits out): a wrapper predictor that feeds the model each
view of a batch and merges the views' outputs at the images' own size.

Views: every subset of `flips` (h: left-right, v: up-down; ttach's product order) at each of
`scales`. A scaled view is the model-ready images resized bilinearly (align_corners=False) to
`int(side * scale)` (ttach's rounding); each view's logits are resized bilinearly back to the
image size (`Predictor.scores`), un-flipped, then softmaxed (`prob_mean`) or not
(`logit_mean`, what `ttach.SegmentationTTAWrapper(merge_mode="mean")` computes) and averaged.

Batching and memory: the flips of one scale go through the model as one stacked batch of
F x N images (F = 2 ** len(flips)); one scale at a time, so the device holds the model's
activations for F x N images at that scale, its F x N x C x H x W logits at the image size and
the N x C x H x W sum, in float32: (F + 1) x N x C x H x W floats besides the model's own
memory. On CUDA out-of-memory the infer stage's back-off halves N, as without TTA.
"""

import itertools

import torch

from .backends.base import Predictor
from .errors import SegsubmitError

FLIP_DIMS = {"h": -1, "v": -2}


def flip_combinations(flips):
    """The flip dims of every view of one scale: each flip off, then on (ttach's order)."""
    return [
        tuple(FLIP_DIMS[name] for name, on in zip(flips, chosen, strict=True) if on)
        for chosen in itertools.product((False, True), repeat=len(flips))
    ]


def scaled(images, scale):
    """`images` (N, C, H, W) resized bilinearly to int(H * scale) x int(W * scale)."""
    if scale == 1:
        return images
    height, width = images.shape[-2:]
    size = (int(height * scale), int(width * scale))
    return torch.nn.functional.interpolate(
        images.float(), size=size, mode="bilinear", align_corners=False
    )


def flipped(tensor, dims):
    return tensor.flip(dims) if dims else tensor


def supports_tta(predictor):
    """Whether the predictor keeps the base class's images -> `scores` path, which TTA wraps
    (backends that override `predict_prepared` post-process their own outputs)."""
    return type(predictor).predict_prepared is Predictor.predict_prepared


class TTAPredictor(Predictor):
    """`inner` (a `Predictor`) run on every view of each batch; `scores` are the merged
    probabilities (prob_mean) or logits (logit_mean) at the images' own size."""

    def __init__(self, inner, settings):
        if not supports_tta(inner):
            raise SegsubmitError(
                f"infer.tta: the {type(inner).__name__} post-processes its own outputs, so "
                "test-time augmentation is not available for it yet; remove infer.tta"
                f"{getattr(inner, 'tta_instead', '')}"
            )
        super().__init__(inner.device, inner.num_classes, inner.precision, inner.source)
        self.inner = inner
        self.settings = settings
        self.combinations = flip_combinations(settings.flips)
        self.scores_are_probabilities = settings.merge == "prob_mean"

    def model_input(self, batch):
        return self.inner.model_input(batch)

    def scores(self, prepared, size):
        total = None
        for scale in self.settings.scales:
            views = scaled(prepared, scale)
            stacked = torch.cat([flipped(views, dims) for dims in self.combinations])
            outputs = self.inner.scores(stacked, size).float()
            views_out = outputs.chunk(len(self.combinations))
            for dims, output in zip(self.combinations, views_out, strict=True):
                view = flipped(output, dims)
                if self.settings.merge == "prob_mean":
                    view = view.softmax(dim=1)
                total = view.clone() if total is None else total.add_(view)
        return total / (len(self.settings.scales) * len(self.combinations))


def with_tta(predictor, settings):
    """`predictor` wrapped in test-time augmentation when `settings` (a `settings.TTASettings`,
    or None) asks for any, else itself."""
    if settings is None or not settings.enabled:
        return predictor
    return TTAPredictor(predictor, settings)
