"""Ensembles (docs/ensembles.md): how the members' cached per-shard outputs are combined, and
the stages of the ensemble rules: the combine step per shard (soft or vote), teammates' CSVs
checked and decoded per shard, and the opt-in weight search on a scored split.

Tie rules, stated once:
- soft: where several classes reach the maximum of the weighted mean, the class the first
  member predicts wins if it is among them (its full-precision argmax always is among the fp16
  maxima of its own probabilities, rounding being monotone: one member reproduces its own maps
  exactly), else the lowest class index.
- vote: where several classes get the most votes, the class of the earliest voter (members in
  config order, then CSVs) among them wins.
"""

import contextlib
import logging

import numpy as np
import torch

from .atomic import write_json
from .errors import SegsubmitError
from .labels import LabelShard, label_shard_writer, read_shard_warnings
from .manifest import Manifest
from .metrics import confusion_matrix, dataset_miou
from .probabilities import read_probability_shard

log = logging.getLogger(__name__)

SPAN = 32  # images combined at once: the stage's memory is one span's, not the shard's


def soft_vote(probabilities, weights, first_labels):
    """uint8 labels (N, h, w) from members' probabilities (M of (N, C, h, w), any float dtype,
    on one device) and weights; the sum is float32 on that device. `first_labels`: the first
    member's own labels (N, h, w), for the tie rule."""
    pairs = zip(weights, probabilities, strict=True)
    total = sum(weight * probs.float() for weight, probs in pairs)
    tied = total == total.amax(dim=1, keepdim=True)
    first_tied = tied.gather(1, first_labels[:, None].long())[:, 0]
    return torch.where(first_tied, first_labels.long(), total.argmax(dim=1)).to(torch.uint8)


def hard_vote(label_maps, num_classes):
    """Pixel-wise majority of voters' uint8 maps (M, N, h, w) -> (N, h, w); ties go to the
    earliest voter's class among the most voted."""
    maps = np.asarray(label_maps)
    votes = np.stack([(maps == label).sum(axis=0) for label in range(num_classes)])
    most_voted = votes == votes.max(axis=0, keepdims=True)
    voter_wins = np.take_along_axis(most_voted, maps.astype(np.intp), axis=0)
    earliest = voter_wins.argmax(axis=0)
    return np.take_along_axis(maps, earliest[None], axis=0)[0]


def combine_device():
    """Where the soft vote runs: the GPU when there is one."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def same_images(path, image_ids, reference_path, reference_ids):
    """One line when two per-shard files of a split hold other images (a bug, or files of
    another run mixed in)."""
    if list(image_ids) != list(reference_ids):
        raise SegsubmitError(
            f"{path}: holds other images than {reference_path}; delete both and rerun"
        )


def soft_spans(first_resized_path, probability_paths, length=SPAN):
    """(image ids, the first member's resized maps (n, h, w), each member's fp16
    probabilities (n, C, h, w)) of consecutive spans of one shard."""
    first = LabelShard(first_resized_path)
    if not len(first):
        return
    arrays = []
    for path in probability_paths:
        image_ids, probabilities = read_probability_shard(path)
        same_images(path, image_ids, first_resized_path, first.image_ids)
        arrays.append(probabilities)
    for start, (image_ids, maps) in zip(
        range(0, len(first), length), first.spans(length), strict=True
    ):
        yield image_ids, np.stack(maps), [array[start : start + length] for array in arrays]


def soft_combined(spans, weights, device):
    """(image ids, uint8 maps (n, h, w)) of each span's `soft_vote` on `device`."""
    for image_ids, first_labels, probabilities in spans:
        tensors = [torch.from_numpy(np.array(p)).to(device) for p in probabilities]  # a copy
        labels = soft_vote(tensors, weights, torch.from_numpy(first_labels).to(device))
        yield image_ids, labels.cpu().numpy()


def vote_spans(resized_paths, length=SPAN):
    """(image ids, the voters' maps (M, n, h, w)) of consecutive spans of one shard, in the
    first voter's image order (a CSV's shards are in manifest order)."""
    first, others = LabelShard(resized_paths[0]), [LabelShard(p) for p in resized_paths[1:]]
    positions = []
    for path, shard in zip(resized_paths[1:], others, strict=True):
        same_images(path, sorted(shard.image_ids), resized_paths[0], sorted(first.image_ids))
        positions.append({image_id: index for index, image_id in enumerate(shard.image_ids)})
    for image_ids, maps in first.spans(length):
        voters = [np.stack(maps)]
        for shard, where in zip(others, positions, strict=True):
            voters.append(np.stack([shard.read(where[image_id]) for image_id in image_ids]))
        yield image_ids, np.stack(voters)


def combine_stage(
    method, weights, names, resized_paths, probability_paths, combined_path, num_classes
):
    """Stage entry: one shard's ensemble maps at the submission size. soft: `soft_vote` of the
    members' probabilities (`probability_paths`, member order) with `weights`, ties by the
    first member's resized maps; vote: `hard_vote` of `resized_paths` (the members', then the
    CSVs'). The members' prediction warnings are carried on, named."""
    first = LabelShard(resized_paths[0])
    size = tuple(int(v) for v in first.shapes[0]) if len(first) else (0, 0)
    warnings = [
        f"ensemble member {name}: {warning}"
        for name, path in zip(names, resized_paths, strict=False)
        for warning in read_shard_warnings(path)
    ]
    device = combine_device()
    if method == "soft":
        combined = soft_combined(soft_spans(resized_paths[0], probability_paths), weights, device)
    else:
        votes = vote_spans(resized_paths)
        combined = ((ids, hard_vote(maps, num_classes)) for ids, maps in votes)
    with label_shard_writer(combined_path, len(first) * size[0] * size[1], warnings) as add:
        for image_ids, maps in combined:
            for image_id, label_map in zip(image_ids, maps, strict=True):
                add(image_id, label_map)
    where = f" on {device}" if method == "soft" else ""
    log.info(
        "ensemble: %d images, %s of %d voters%s", len(first), method, len(resized_paths), where
    )


def csv_stage(csv_path, csv_key, manifest_path, shard_paths, output_paths, class_names, size,
              threads=None):  # fmt: skip
    """Stage entry: a teammate's submission CSV (`csv_key`: its config key) checked against the
    split's manifest and `size` (one line naming it when it is for other images or another
    size), then its maps written per shard in the shards' order (`output_paths`, one per
    `shard_paths`)."""
    from .formats.competition_csv import read_label_maps, validate_submission

    manifest = Manifest.load(manifest_path)
    name = f"{csv_key} {csv_path}"
    validate_submission(
        csv_path, manifest.file_names(), len(class_names), size[0] * size[1], threads, name=name
    )
    shards = [Manifest.load(path).images for path in shard_paths]
    where = {
        entry.file_name: (index, entry.id)
        for index, entries in enumerate(shards)
        for entry in entries
    }
    with contextlib.ExitStack() as stack:
        writers = [
            stack.enter_context(label_shard_writer(path, len(entries) * size[0] * size[1]))
            for path, entries in zip(output_paths, shards, strict=True)
        ]
        for file_name, label_map in read_label_maps(csv_path, size):
            index, image_id = where[file_name]
            writers[index](image_id, label_map)
    log.info("ensemble: %s: %d rows checked and decoded", name, len(manifest.images))


def coordinate_search(evaluate, start, grid, rounds):
    """(weights, score, evaluations): from `start`, each member's weight in turn set to the
    `grid` value that most raises `evaluate(weights)` (a strict gain only; weights all zero
    are skipped), for up to `rounds` passes, stopping after a pass that changed nothing."""
    best = [float(weight) for weight in start]
    best_score, evaluations = evaluate(best), 1
    for _ in range(rounds):
        improved = False
        for member in range(len(best)):
            for value in grid:
                trial = [*best[:member], float(value), *best[member + 1 :]]
                if trial == best or not any(trial):
                    continue
                score, evaluations = evaluate(trial), evaluations + 1
                if score > best_score:
                    best, best_score, improved = trial, score, True
        if not improved:
            break
    return best, best_score, evaluations


def soft_confusions(shards, truth, weights, num_classes, ignore_index, device):
    """{image id: confusion matrix} of the soft vote with `weights` against `truth` (a
    `LabelShard` of the ground truth); `shards`: (first member's resized path, members'
    probability paths) per shard."""
    where = {image_id: index for index, image_id in enumerate(truth.image_ids)}
    confusions = {}
    for first_path, probability_paths in shards:
        spans = soft_combined(soft_spans(first_path, probability_paths), weights, device)
        for image_ids, maps in spans:
            for image_id, label_map in zip(image_ids, maps, strict=True):
                truth_map = truth.read(where[image_id])
                confusions[image_id] = confusion_matrix(
                    truth_map, label_map, num_classes, ignore_index
                )
    return confusions


def weight_search_stage(
    first_resized_paths, probability_paths, ground_truth_path, search_path, names, weights,
    grid, rounds, class_names, ignore_index=None,
):  # fmt: skip
    """Stage entry: a coordinate search (`coordinate_search`) of the soft-vote weights on a
    scored split at the submission size. Guard against fitting the split: the search sees
    every other image (the truth's even positions); the json reports the configured and the
    found weights' mIoU on those, on the held-out others and on the whole split. The weights
    are reported, never applied (the combine step keeps the configured ones)."""
    truth = LabelShard(ground_truth_path)
    shards = list(zip(first_resized_paths, zip(*probability_paths, strict=True), strict=True))
    halves = {"search": truth.image_ids[0::2], "held_out": truth.image_ids[1::2]}
    device, num_classes, cache = combine_device(), len(class_names), {}

    def mious(trial):
        key = tuple(trial)
        if key not in cache:
            confusions = soft_confusions(shards, truth, trial, num_classes, ignore_index, device)
            cache[key] = {
                part: dataset_miou(sum((confusions[i] for i in ids), np.zeros((num_classes,) * 2)))
                for part, ids in {**halves, "split": truth.image_ids}.items()
            }
        return cache[key]

    found, _, evaluations = coordinate_search(
        lambda trial: mious(trial)["search"], weights, grid, rounds
    )
    configured, searched = mious(list(map(float, weights))), mious(found)
    result = {
        "members": list(names),
        "configured_weights": list(map(float, weights)),
        "searched_weights": found,
        "grid": list(map(float, grid)),
        "rounds": rounds,
        "evaluations": evaluations,
        "images": {part: len(ids) for part, ids in halves.items()},
        "miou": {
            part: {
                "configured": configured[part],
                "searched": searched[part],
                "gain": searched[part] - configured[part],
            }
            for part in ("search", "held_out", "split")
        },  # fmt: skip
        "applied": False,
    }
    write_json(search_path, result)
    gain = result["miou"]
    log.info(
        "weight search: %s -> %s: mIoU gain %+.4f on the searched half, %+.4f held out (%d "
        "evaluations); not applied",
        result["configured_weights"], found, gain["search"]["gain"], gain["held_out"]["gain"],
        evaluations,
    )  # fmt: skip
