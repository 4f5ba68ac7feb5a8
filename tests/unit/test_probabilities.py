"""Outputs derived from class probabilities in the infer job: sampled like the label resize,
area-averaged, thresholded, and streamed into their shard files."""

import numpy as np
import pytest
import torch
from conftest import CLASSES, make_dataset

from segsubmit.ensemble import soft_vote
from segsubmit.infer import infer_stage
from segsubmit.labels import read_label_shard
from segsubmit.manifest import manifest_stage
from segsubmit.probabilities import (
    ProbabilityOutputs,
    area_averaged,
    probability_shard_writer,
    read_probability_shard,
    sampled,
)
from segsubmit.resize import resize_label_maps, resize_stage
from segsubmit.settings import InferSettings
from segsubmit.testing import smp_unet_settings


def random_probabilities(count, classes, height, width, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.rand((count, classes, height, width), generator=generator).softmax(dim=1)


@pytest.mark.parametrize("backend", ["albumentations", "kornia"])
@pytest.mark.parametrize(
    ("shape", "size"), [((64, 64), (32, 32)), ((65, 47), (32, 32)), ((40, 90), (48, 30))]
)
def test_nearest_sampling_picks_the_pixels_the_label_resize_picks(backend, shape, size):
    probabilities = random_probabilities(3, 5, *shape)
    labels = probabilities.argmax(dim=1).to(torch.uint8).numpy()
    outputs = ProbabilityOutputs(size=size, sampling="nearest", resize_backend=backend)
    picked = sampled(probabilities, outputs).argmax(dim=1).numpy()
    assert np.array_equal(picked, resize_label_maps(labels, size, backend))


def test_area_averaging_is_the_mean_of_each_block():
    probabilities = random_probabilities(2, 4, 8, 12).double()
    blocks = probabilities.numpy().reshape(2, 4, 4, 2, 4, 3).mean(axis=(3, 5))
    assert np.allclose(area_averaged(probabilities, (4, 4)).numpy(), blocks, atol=1e-12)


def test_a_probability_shard_reads_back_and_appears_only_when_complete(tmp_path):
    path = tmp_path / "probs.npz"
    arrays = random_probabilities(3, 4, 5, 6).numpy().astype(np.float16)
    with probability_shard_writer(path, 3, 4, (5, 6)) as add:
        for image_id, array in zip([7, 8, 9], arrays, strict=True):
            add(image_id, array)
    image_ids, stored = read_probability_shard(path)
    assert image_ids == [7, 8, 9] and np.array_equal(stored, arrays)
    short = probability_shard_writer(tmp_path / "short.npz", 2, 4, (5, 6))
    with pytest.raises(ValueError, match="wrote 1 images, expected 2"), short as add:
        add(1, arrays[0])
    assert not (tmp_path / "short.npz").exists()


@pytest.fixture(scope="module")
def infer_outputs(tmp_path_factory):
    """A real infer job (SMP Unet, CPU) with every probability output, beside the
    resize of its label maps."""
    tmp_path = tmp_path_factory.mktemp("probabilities")
    root = make_dataset(tmp_path / "data", {"val": 6}, size=48)
    out = tmp_path / "results"
    manifest_stage(root / "val.json", root, CLASSES, out / "manifest.json", [out / "0.json"])
    settings = smp_unet_settings(tmp_path / "model.pt")
    infer = InferSettings(batch_size=4, workers=0)
    infer_stage(out / "0.json", out / "plain.npz", settings, infer)
    outputs = ProbabilityOutputs(
        probabilities=str(out / "probs.npz"),
        area_labels=str(out / "area.npz"),
        confident_labels=str(out / "confident.npz"),
        size=(24, 24),
        threshold=0.2,
    )
    infer_stage(out / "0.json", out / "labels.npz", settings, infer, outputs=outputs)
    resize_stage(out / "labels.npz", out / "resized.npz", "albumentations", [24, 24], "nearest",
                 False)  # fmt: skip
    return out


def test_probability_outputs_leave_the_label_maps_unchanged(infer_outputs):
    plain_ids, plain = read_label_shard(infer_outputs / "plain.npz")
    image_ids, labels = read_label_shard(infer_outputs / "labels.npz")
    assert image_ids == plain_ids and np.array_equal(labels, plain)
    assert len(np.unique(labels)) > 3  # a model whose maps vary


def test_stored_probabilities_reproduce_the_resized_labels(infer_outputs):
    """fp16 rounding may tie near-equal classes; the one-member rule of `soft_vote` (the
    member's own labels win ties) gives its resized maps back exactly."""
    image_ids, probabilities = read_probability_shard(infer_outputs / "probs.npz")
    resized_ids, resized = read_label_shard(infer_outputs / "resized.npz")
    assert image_ids == resized_ids and probabilities.shape == (6, len(CLASSES), 24, 24)
    assert np.allclose(probabilities.astype(np.float32).sum(axis=1), 1, atol=1e-2)
    first = torch.from_numpy(np.asarray(resized))
    combined = soft_vote([torch.from_numpy(np.asarray(probabilities))], [1.0], first)
    assert torch.equal(combined, first)


def test_area_and_confident_labels(infer_outputs):
    _, labels = read_label_shard(infer_outputs / "labels.npz")
    _, area = read_label_shard(infer_outputs / "area.npz")
    _, confident = read_label_shard(infer_outputs / "confident.npz")
    assert np.asarray(area).shape == (6, 24, 24)
    kept = np.asarray(confident) != 255
    assert np.array_equal(np.asarray(confident)[kept], np.asarray(labels)[kept])
    assert kept.any() and not kept.all()  # a random model is unsure of some pixels at 0.2
