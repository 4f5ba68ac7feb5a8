"""The competition's metrics (no torch needed) and the score stage."""

import logging
import warnings

import numpy as np

from .atomic import atomic_path, write_json
from .labels import LabelShard, maps_in_order
from .provenance import collect_provenance

log = logging.getLogger(__name__)


def confusion_matrix(ground_truth, prediction, num_classes, ignore_index=None):
    """num_classes x num_classes counts (rows: truth, columns: prediction), pixels with a valid
    truth label only (the baseline's `np.bincount(n * gt + pred)`; in uint8 when n² <= 256):
    truth outside 0..n-1 and truth equal to `ignore_index` are left out."""
    truth, predicted = ground_truth.ravel(), prediction.ravel()
    ignored = ignore_index is not None and 0 <= ignore_index < num_classes
    if truth.size and (truth.min() < 0 or truth.max() >= num_classes or ignored):
        valid = (truth >= 0) & (truth < num_classes)
        if ignored:
            valid &= truth != ignore_index
        truth, predicted = truth[valid], predicted[valid]
    if truth.dtype == predicted.dtype == np.uint8 and num_classes**2 <= 256:
        codes = truth * np.uint8(num_classes) + predicted
    else:
        codes = num_classes * truth.astype(np.int64) + predicted
    counts = np.bincount(codes, minlength=num_classes**2)
    return counts[: num_classes**2].reshape(num_classes, num_classes)


def iou_per_class(confusion):
    """IoU of each class; NaN for a class absent from both truth and prediction. Also for a
    stack of confusion matrices (..., n, n) -> (..., n)."""
    intersection = np.diagonal(confusion, axis1=-2, axis2=-1).astype(np.float64)
    union = confusion.sum(axis=-2) + confusion.sum(axis=-1) - intersection
    with np.errstate(divide="ignore", invalid="ignore"):
        return intersection / union


def dataset_miou(confusion):
    """The competition metric: nanmean of per-class IoU over the accumulated confusion matrix."""
    return float(np.nanmean(iou_per_class(confusion)))


def miou_over_truth_classes(confusion):
    """Detectron2's SemSegEvaluator mIoU: the mean IoU over the classes present in the truth
    (a class only predicted is left out, where `dataset_miou` counts it 0); NaN without truth."""
    present = confusion.sum(axis=1) > 0
    if not present.any():
        return float("nan")
    return float(np.mean(iou_per_class(confusion)[present]))


def image_confusions(ground_truths, predictions, num_classes, ignore_index=None):
    """(N, n, n) confusion matrices, one per image, of (possibly lazy) aligned maps."""
    return np.array(
        [
            confusion_matrix(truth, predicted, num_classes, ignore_index)
            for truth, predicted in zip(ground_truths, predictions, strict=True)
        ],
        dtype=np.int64,
    ).reshape(-1, num_classes, num_classes)


def scores_from_confusions(confusions):
    """Dataset-level mIoU, per-class IoU (None: class in neither truth nor prediction),
    confusion matrix and the per-image-mean mIoU of per-image confusion matrices, for JSON;
    `miou_truth_classes`: Detectron2's convention (classes present in the truth only)."""
    total = confusions.sum(axis=0)
    truth_miou = miou_over_truth_classes(total)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an image with no valid truth pixel
        per_image = np.nanmean(iou_per_class(confusions), axis=1)
    return {
        "miou": dataset_miou(total),
        "miou_truth_classes": None if np.isnan(truth_miou) else truth_miou,
        "per_class_iou": [None if np.isnan(v) else float(v) for v in iou_per_class(total)],
        "confusion_matrix": total.tolist(),
        "per_image_mean_miou": float(np.mean(per_image)) if per_image.size else None,
        "pixel_accuracy": float(np.diag(total).sum() / max(total.sum(), 1)),
        "images": len(per_image),
    }


def score_images(ground_truths, predictions, num_classes, ignore_index=None):
    """`scores_from_confusions` of aligned maps; they may come lazily (iterables): only
    per-image confusion matrices are kept. Truth pixels equal to `ignore_index` count nowhere."""
    return scores_from_confusions(
        image_confusions(ground_truths, predictions, num_classes, ignore_index)
    )


def format_score_table(scores, class_names):
    """A readable per-class IoU table for the log."""
    lines = [f"{'class':<16}{'IoU':>8}"]
    for name, iou in zip(class_names, scores["per_class_iou"], strict=True):
        lines.append(f"{name:<16}{'n/a' if iou is None else f'{iou:.4f}':>8}")
    lines.append(f"{'mIoU (dataset)':<16}{scores['miou']:>8.4f}")
    if scores["per_image_mean_miou"] is not None:
        lines.append(f"{'mIoU (per-image mean)':<22}{scores['per_image_mean_miou']:>8.4f}")
    return "\n".join(lines)


def score_stage(
    ground_truth_path,
    label_paths,
    score_path,
    table_path,
    class_names,
    size_name,
    provenance_settings=None,
    model_files=None,
    ignore_index=None,
):
    """Stage entry: mIoU and friends of the label maps against the cached ground truth (truth
    pixels equal to `ignore_index` left out), with the provenance of `provenance_settings` and
    `model_files`."""
    truth_shard = LabelShard(ground_truth_path)
    truths = (truth_shard.read(position) for position in range(len(truth_shard)))
    predictions = maps_in_order(truth_shard.image_ids, label_paths)
    scores = score_images(truths, predictions, len(class_names), ignore_index)
    scores["classes"] = list(class_names)
    scores["size"] = size_name
    scores["ignore_index"] = ignore_index
    scores["provenance"] = collect_provenance(provenance_settings or {}, model_files or {})
    table = format_score_table(scores, class_names)
    write_json(score_path, scores)
    with atomic_path(table_path) as tmp_path:
        tmp_path.write_text(table + "\n")
    log.info("score (%s):\n%s", size_name, table)
