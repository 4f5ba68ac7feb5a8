"""`model.mmseg.tta` against MMSegmentation's own TTA (mmseg 1.2.2, CPU fp32, same process so
equal threads): the TTA model built as `tools/test.py --tta` builds it (`cfg.tta_model.module =
cfg.model; cfg.model = cfg.tta_model`), its checkpoint loaded as the Runner loads it, each image
fed through the config's own `tta_pipeline` (annotations included, as a scored test set has them)
and `pseudo_collate`d at batch 1, then `test_step` (what the Runner's test loop calls) gives the
reference maps."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from mmseg_support import add_tta_pipeline, mmseg_installed, write_mmseg_model  # noqa: F401
from test_mmseg_backend import SIZES, load, settings_for, write_pngs

from segsubmit.backends.base import has_probabilities
from segsubmit.errors import SegsubmitError
from segsubmit.settings import TTASettings
from segsubmit.testing import (
    mmseg_tta_maps,
    mmseg_tta_reference,
    mmseg_tta_sample,
    predict_shard,
)
from segsubmit.tta import with_tta

pytestmark = [
    pytest.mark.usefixtures("mmseg_installed"),
    pytest.mark.filterwarnings("ignore::UserWarning"),
]


def tta_settings(config, weights):
    settings = settings_for(config, weights)
    return replace(settings, options={**settings.options, "tta": True})


def reference_maps(config, weights, folder, entries):
    model, pipeline = mmseg_tta_reference(config, weights)
    samples = [mmseg_tta_sample(folder / entry.path, entry.size) for entry in entries]
    return mmseg_tta_maps(model, pipeline, samples)


@pytest.mark.parametrize(
    ("flips", "workers"), [(("h",), 0), (("h", "v"), 2)], ids=["flip-h", "flips-hv-workers"]
)
def test_tta_equals_mmsegs_own_tta(tmp_path, flips, workers):
    """Batched (3 images per batch, mixed sizes, padding by size_divisor) equals the reference
    on every pixel: 4 ratios x (no flip + each flip) views."""
    config, weights = write_mmseg_model(tmp_path / "model")
    add_tta_pipeline(config, flips=flips)
    entries = write_pngs(tmp_path, SIZES)
    settings = tta_settings(config, weights)
    predictor, transform = load(settings)
    assert has_probabilities(predictor)
    ours = predict_shard(entries, tmp_path, predictor, 3, workers, transform=transform)
    theirs = reference_maps(config, weights, tmp_path, entries)
    equal = sum(int((a == b).sum()) for a, b in zip(ours, theirs, strict=True))
    total = sum(b.size for b in theirs)
    assert equal == total, f"{equal} / {total} pixels equal"
    plain, plain_transform = load(settings_for(config, weights))
    plain = predict_shard(entries, tmp_path, plain, 3, 0, transform=plain_transform)
    assert any((a != b).any() for a, b in zip(ours, plain, strict=True))  # TTA changes maps


def test_tta_probabilities_are_the_merged_views(tmp_path):
    """labels_and_probabilities with TTA: the labels of predict_prepared, probabilities that sum
    to 1 and whose argmax are those labels."""
    config, weights = write_mmseg_model(tmp_path / "model")
    add_tta_pipeline(config)
    predictor, transform = load(tta_settings(config, weights))
    rng = np.random.default_rng(2)
    images = torch.from_numpy(rng.integers(0, 256, (2, 3, 50, 70), dtype=np.uint8))
    batch = torch.stack([transform(image) for image in images])
    labels, probabilities = predictor.predict_probabilities(batch, (50, 70))
    assert torch.equal(labels, predictor.predict(batch, (50, 70)))
    torch.testing.assert_close(probabilities.sum(dim=1), torch.ones(2, 50, 70))
    assert torch.equal(probabilities.argmax(dim=1).to(torch.uint8), labels)


def test_tta_refusals_are_one_line(tmp_path):
    config, weights = write_mmseg_model(tmp_path / "model")
    with pytest.raises(SegsubmitError, match=r"model.mmseg.tta: .* has no tta_pipeline") as raised:
        load(tta_settings(config, weights))
    assert "\n" not in str(raised.value)
    predictor, _ = load(settings_for(config, weights))
    with pytest.raises(SegsubmitError, match=r"remove infer.tta; model.mmseg.tta: true runs"):
        with_tta(predictor, TTASettings(flips=("h",)))
