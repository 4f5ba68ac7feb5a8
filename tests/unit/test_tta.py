"""Test-time augmentation (segsubmit.tta) against ttach 0.0.3 on an SMP model, CPU fp32.

The rule: ttach's `merge_mode="mean"` averages the model's raw outputs (logits), so it is our
`logit_mean`; its `Scale` resizes the image with `int(side * scale)` and the output back with
`int(side' / scale)` using its own `interpolation` for both, so it is given "bilinear" with
align_corners=False (ours) and sides that round-trip (64 -> 48/80 -> 64). What may still
differ: ttach scales the normalised image, we the 0..255 one before normalising (bilinear
weights sum to one, so only float rounding differs), and ttach un-scales before un-flipping
where we un-flip after (the same sampling, mirrored): near-ties of the argmax only.
"""

import numpy as np
import pytest
import torch
import ttach  # in the test extra: these tests run, never skip

from segsubmit.backends.base import load_predictor
from segsubmit.errors import SegsubmitError
from segsubmit.settings import TTASettings
from segsubmit.testing import NUM_CLASSES, model_settings
from segsubmit.tta import TTAPredictor, flip_combinations, with_tta

SCALES = (0.75, 1.0, 1.25)


@pytest.fixture(scope="module")
def smp_predictor():
    from segsubmit.backends.smp_model import SmpPredictor, build_smp_model

    torch.manual_seed(0)
    module = build_smp_model("Unet", "resnet18", NUM_CLASSES).eval()
    settings = model_settings("smp", "unused.pt")
    return SmpPredictor(module, settings, torch.device("cpu"))


def random_images(count=4, size=64, seed=1):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (count, 3, size, size), dtype=torch.uint8, generator=generator)


def ttach_labels(predictor, images, flips):
    transforms = [ttach.HorizontalFlip()] if "h" in flips else []
    transforms += [ttach.VerticalFlip()] if "v" in flips else []
    transforms.append(ttach.Scale(list(SCALES), interpolation="bilinear", align_corners=False))
    wrapper = ttach.SegmentationTTAWrapper(
        predictor.module, ttach.Compose(transforms), merge_mode="mean"
    )
    with torch.inference_mode():
        return wrapper((images.float() - predictor.mean) / predictor.std).argmax(1)


@pytest.mark.parametrize("flips", [("h",), ("h", "v")])
def test_logit_mean_equals_ttach_mean(smp_predictor, flips):
    images = random_images()
    tta = TTAPredictor(smp_predictor, TTASettings(flips, SCALES, "logit_mean"))
    ours = tta.predict(images, (64, 64)).long()
    theirs = ttach_labels(smp_predictor, images, flips)
    assert (ours == theirs).float().mean().item() >= 0.9999


def test_prob_mean_is_the_mean_of_the_views_softmax(smp_predictor):
    images = random_images(count=2)
    tta = TTAPredictor(smp_predictor, TTASettings(("h",), (1.0, 0.5), "prob_mean"))
    with torch.inference_mode():
        merged = tta.scores(images, (64, 64))
        views = []
        for scale in (1.0, 0.5):
            small = torch.nn.functional.interpolate(
                images.float(), scale_factor=scale, mode="bilinear", align_corners=False
            )
            for flip in (False, True):
                view = small.flip(-1) if flip else small
                logits = smp_predictor.scores(view, (64, 64))
                views.append((logits.flip(-1) if flip else logits).softmax(1))
    torch.testing.assert_close(merged, torch.stack(views).mean(0))
    assert torch.allclose(merged.sum(1), torch.ones(()))


def test_views_follow_ttach_product_order():
    assert flip_combinations(("h", "v")) == [(), (-2,), (-1,), (-1, -2)]
    assert flip_combinations(()) == [()]


def test_no_tta_is_the_plain_predictor(tmp_path):
    from segsubmit.testing import save_random_model

    settings = model_settings("torchvision", save_random_model(tmp_path / "m.pt"), device="cpu")
    assert not isinstance(with_tta(load_predictor(settings), TTASettings()), TTAPredictor)
    tta = TTASettings(flips=("h",))
    predictor = with_tta(load_predictor(settings), tta)
    assert isinstance(predictor, TTAPredictor)
    labels = predictor.predict(random_images(count=1, size=40), (40, 40))
    assert labels.shape == (1, 40, 40) and labels.dtype == torch.uint8


def test_backends_that_post_process_are_refused_in_one_line(smp_predictor):
    class PostProcessing(type(smp_predictor)):
        def predict_prepared(self, prepared, size):
            return np.zeros(size)

    smp_predictor.__class__ = PostProcessing
    try:
        with pytest.raises(SegsubmitError, match="infer.tta: .*not available"):
            TTAPredictor(smp_predictor, TTASettings(flips=("h",)))
    finally:
        smp_predictor.__class__ = PostProcessing.__mro__[1]


def test_out_of_memory_back_off_halves_the_images_not_the_views(smp_predictor):
    from segsubmit.infer import predict_with_backoff

    class SmallDevice(type(smp_predictor)):
        def scores(self, prepared, size):
            if len(prepared) > 2:  # 2 flip views of one image fit, no more
                raise torch.cuda.OutOfMemoryError("out of memory")
            return super().scores(prepared, size)

    images = random_images(count=4, size=32)
    tta = TTASettings(("h",), (1.0,), "prob_mean")
    expected = TTAPredictor(smp_predictor, tta).predict(images, (32, 32))
    smp_predictor.__class__ = SmallDevice
    try:
        labels = predict_with_backoff(TTAPredictor(smp_predictor, tta), images, (32, 32))["labels"]
    finally:
        smp_predictor.__class__ = SmallDevice.__mro__[1]
    assert torch.equal(labels, expected)
