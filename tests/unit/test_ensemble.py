"""Combining members (segsubmit.ensemble) against references: float64 soft mean, scipy's mode;
the combine, CSV and weight-search stages on real shard files."""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from segsubmit.ensemble import (
    combine_stage,
    coordinate_search,
    csv_stage,
    hard_vote,
    soft_vote,
    weight_search_stage,
)
from segsubmit.errors import SegsubmitError
from segsubmit.formats.competition_csv import write_submission
from segsubmit.labels import read_label_shard, write_label_shard
from segsubmit.manifest import Manifest
from segsubmit.probabilities import probability_shard_writer
from segsubmit.testing import save_manifest

NUM_CLASSES = 11


def member_outputs(count, seed=0, shape=(4, NUM_CLASSES, 32, 32)):
    """Each member's (fp16 probabilities, full-precision argmax labels) from random logits."""
    generator = torch.Generator().manual_seed(seed)
    outputs = []
    for _ in range(count):
        logits = torch.randn(shape, generator=generator) * 3
        outputs.append((logits.softmax(1).half(), logits.argmax(1).to(torch.uint8)))
    return outputs


def test_one_member_reproduces_its_own_maps_exactly():
    ((probs, labels),) = member_outputs(1)
    for weight in (1.0, 0.3):
        assert torch.equal(soft_vote([probs], [weight], labels), labels)


def test_soft_vote_equals_a_float64_reference():
    outputs = member_outputs(3, seed=1)
    weights = [1.0, 1.5, 0.5]
    combined = soft_vote([p for p, _ in outputs], weights, outputs[0][1])
    reference = sum(w * p.double() for w, (p, _) in zip(weights, outputs, strict=True)).argmax(1)
    agree = (combined.long() == reference).double().mean().item()
    assert agree >= 0.9999  # disagreements: float32 vs float64 sums within rounding of a tie


def test_odd_member_vote_equals_the_elementwise_mode():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    maps = rng.integers(0, 2, size=(5, 3, 16, 16), dtype=np.uint8)  # two classes: no ties
    expected = stats.mode(maps, axis=0, keepdims=False).mode
    assert np.array_equal(hard_vote(maps, 2), expected)
    many = rng.integers(0, NUM_CLASSES, size=(5, 3, 16, 16), dtype=np.uint8)
    votes = np.stack([(many == c).sum(0) for c in range(NUM_CLASSES)])
    unique_winner = (votes == votes.max(0)).sum(0) == 1
    mode = stats.mode(many, axis=0, keepdims=False).mode
    assert np.array_equal(hard_vote(many, NUM_CLASSES)[unique_winner], mode[unique_winner])


def test_vote_ties_go_to_the_earliest_voter():
    maps = np.array([[[[3, 1]]], [[[4, 2]]], [[[5, 2]]]], dtype=np.uint8)  # (3 voters, 1, 1, 2)
    assert hard_vote(maps, 6).tolist() == [[[3, 2]]]


def write_member(folder, name, probabilities, labels, image_ids):
    """A member's probability shard and resized-label shard, as its jobs write them."""
    probability_path, resized_path = folder / f"{name}.probs.npz", folder / f"{name}.resized.npz"
    with probability_shard_writer(
        probability_path, len(image_ids), probabilities.shape[1], probabilities.shape[2:]
    ) as add:
        for image_id, member_probabilities in zip(image_ids, probabilities.numpy(), strict=True):
            add(image_id, member_probabilities)
    write_label_shard(resized_path, image_ids, list(labels.numpy()))
    return probability_path, resized_path


def test_combine_stage_soft_equals_a_float64_reference(tmp_path):
    outputs = member_outputs(3, seed=2, shape=(40, NUM_CLASSES, 16, 16))  # spans of 32 and 8
    weights, image_ids = [1.0, 1.5, 0.5], list(range(100, 140))
    paths = [
        write_member(tmp_path, f"m{index}", probabilities, labels, image_ids)
        for index, (probabilities, labels) in enumerate(outputs)
    ]
    combined = tmp_path / "combined.npz"
    combine_stage("soft", weights, ["m0", "m1", "m2"], [r for _, r in paths],
                  [p for p, _ in paths], combined, NUM_CLASSES)  # fmt: skip
    ids, maps = read_label_shard(combined)
    reference = sum(
        w * torch.from_numpy(p.numpy().astype(np.float64))
        for w, (p, _) in zip(weights, outputs, strict=True)
    ).argmax(1)
    assert ids == image_ids
    assert (maps == reference.numpy()).mean() >= 0.9999


def test_one_member_combine_stage_reproduces_its_maps(tmp_path):
    ((probabilities, labels),) = member_outputs(1, seed=3, shape=(5, NUM_CLASSES, 8, 8))
    probability_path, resized_path = write_member(tmp_path, "a", probabilities, labels, [7] * 5)
    for method in ("soft", "vote"):
        combined = tmp_path / f"{method}.npz"
        combine_stage(
            method, [0.3], ["a"], [resized_path], [probability_path], combined, NUM_CLASSES
        )
        assert np.array_equal(read_label_shard(combined)[1], labels.numpy())


def test_combine_stage_vote_is_the_mode_in_the_first_voters_order(tmp_path):
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(4)
    maps = rng.integers(0, 2, size=(3, 6, 8, 8), dtype=np.uint8)
    image_ids = [5, 3, 9, 1, 2, 8]
    paths = []
    for voter, voter_maps in enumerate(maps):
        order = np.arange(6) if voter == 0 else np.argsort(image_ids)  # a CSV: manifest order
        paths.append(tmp_path / f"v{voter}.npz")
        write_label_shard(paths[-1], [image_ids[i] for i in order], list(voter_maps[order]))
    combined = tmp_path / "vote.npz"
    combine_stage("vote", [1, 1], ["a", "b"], paths, [], combined, 2)
    ids, voted = read_label_shard(combined)
    assert ids == image_ids
    assert np.array_equal(voted, stats.mode(maps, axis=0, keepdims=False).mode)


def test_csv_stage_decodes_per_shard_and_refuses_other_images_or_sizes(tmp_path):
    names = [f"batch_01_vt/{i:04d}.jpg" for i in range(6)]
    manifest = Manifest.load(save_manifest(tmp_path / "manifest.json", names))
    for shard in (0, 1):  # the shards' entries, as the manifest stage writes them
        replace(manifest, images=manifest.images[shard::2]).save(tmp_path / f"s{shard}.json")
    maps = np.random.default_rng(5).integers(0, NUM_CLASSES, size=(6, 4, 4), dtype=np.uint8)
    write_submission(tmp_path / "mate.csv", names, list(maps))
    outputs = [tmp_path / "c0.npz", tmp_path / "c1.npz"]
    arguments = {
        "csv_key": "ensemble.csvs[0]",
        "manifest_path": tmp_path / "manifest.json",
        "shard_paths": [tmp_path / "s0.json", tmp_path / "s1.json"],
        "output_paths": outputs,
        "class_names": [str(i) for i in range(NUM_CLASSES)],
    }
    csv_stage(tmp_path / "mate.csv", size=(4, 4), **arguments)
    assert np.array_equal(read_label_shard(outputs[0])[1], maps[0::2])
    assert read_label_shard(outputs[1])[0] == [1, 3, 5]  # the manifest's ids of names 1, 3, 5
    assert np.array_equal(read_label_shard(outputs[1])[1], maps[1::2])
    write_submission(tmp_path / "other.csv", [*names[:5], "batch_09/x.jpg"], list(maps))
    for csv_name, size, problem in [
        ("other.csv", (4, 4), "line 7 image_id 'batch_09/x.jpg', expected"),
        ("mate.csv", (2, 8), None),  # same pixel count: decodes, as the CSV cannot tell
        ("mate.csv", (8, 8), "line 2 has 16 values, expected 64"),
    ]:
        if problem is None:
            csv_stage(tmp_path / csv_name, size=size, **arguments)
            continue
        with pytest.raises(SegsubmitError) as error:
            csv_stage(tmp_path / csv_name, size=size, **arguments)
        assert str(error.value).startswith(f"ensemble.csvs[0] {tmp_path / csv_name}: {problem}")
        assert "\n" not in str(error.value)


def test_coordinate_search_finds_the_best_grid_point():
    def score(weights):
        return -((weights[0] - 1.5) ** 2) - (weights[1] - 0.5) ** 2

    weights, best, evaluations = coordinate_search(score, [1, 1], [0, 0.5, 1, 1.5, 2], 3)
    assert weights == [1.5, 0.5] and best == 0 and evaluations > 1
    assert coordinate_search(score, [1.5, 0.5], [0, 1], 3)[:2] == ([1.5, 0.5], 0)  # no gain


def test_weight_search_stage_finds_the_better_member_and_reports_held_out_images(tmp_path):
    generator = torch.Generator().manual_seed(6)
    truth = torch.randint(0, 3, (8, 8, 8), generator=generator)
    good = torch.nn.functional.one_hot(truth, 3).permute(0, 3, 1, 2).float() * 0.6 + 0.1
    bad = torch.rand((8, 3, 8, 8), generator=generator).softmax(1)
    image_ids = list(range(8))
    write_label_shard(tmp_path / "truth.npz", image_ids, list(truth.numpy().astype(np.uint8)))
    bad_paths = write_member(tmp_path, "bad", bad.half(), bad.argmax(1).to(torch.uint8), image_ids)
    good_paths = write_member(tmp_path, "good", good.half(), truth.to(torch.uint8), image_ids)
    weight_search_stage([bad_paths[1]], [[bad_paths[0]], [good_paths[0]]], tmp_path / "truth.npz",
                        tmp_path / "search.json", ["bad", "good"], [2, 0.5], [0, 0.5, 1, 2], 2,
                        ["0", "1", "2"])  # fmt: skip
    search = json.loads((tmp_path / "search.json").read_text())
    assert search["applied"] is False and search["images"] == {"search": 4, "held_out": 4}
    assert search["searched_weights"][0] < search["searched_weights"][1]
    assert search["miou"]["split"]["searched"] == 1.0
    assert search["miou"]["held_out"]["gain"] > 0 and search["miou"]["search"]["gain"] > 0


@pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU (the combine's GPU path)"
)
def test_soft_vote_on_the_gpu_equals_the_cpu():
    outputs = member_outputs(3, seed=7, shape=(8, NUM_CLASSES, 64, 64))
    weights, first = [1.0, 1.5, 0.5], outputs[0][1]
    on_cpu = soft_vote([p for p, _ in outputs], weights, first)
    on_gpu = soft_vote([p.cuda() for p, _ in outputs], weights, first.cuda())
    assert torch.equal(on_gpu.cpu(), on_cpu)
