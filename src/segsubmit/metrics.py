"""Ground truth from COCO polygons and the competition's metrics (no torch needed)."""

import warnings

import numpy as np

from .coco import category_class_index


def rasterize_ground_truth(coco_api, image_id, class_of_category):
    """(H, W) uint8 class map: annotations drawn largest area first, so smaller objects win
    (the competition baseline's order); unannotated pixels are background (0)."""
    info = coco_api.imgs[image_id]
    mask = np.zeros((info["height"], info["width"]), dtype=np.uint8)
    annotations = coco_api.loadAnns(coco_api.getAnnIds(imgIds=image_id, iscrowd=None))
    for annotation in sorted(annotations, key=lambda a: a["area"], reverse=True):
        mask[coco_api.annToMask(annotation) == 1] = class_of_category[annotation["category_id"]]
    return mask


def load_ground_truth(json_path, class_names):
    """(pycocotools COCO, {category id: class index}) for a json with annotations."""
    from pycocotools.coco import COCO

    coco_api = COCO(str(json_path))
    return coco_api, category_class_index(json_path, coco_api.dataset, class_names)


def confusion_matrix(ground_truth, prediction, num_classes):
    """num_classes x num_classes counts (rows: truth, columns: prediction), pixels with a valid
    truth label only (the baseline's `np.bincount(n * gt + pred)`; in uint8 when n² <= 256)."""
    truth, predicted = ground_truth.ravel(), prediction.ravel()
    if truth.size and (truth.min() < 0 or truth.max() >= num_classes):
        valid = (truth >= 0) & (truth < num_classes)
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


def score_images(ground_truths, predictions, num_classes):
    """Dataset-level mIoU, per-class IoU (None: class in neither truth nor prediction),
    confusion matrix and the per-image-mean mIoU, ready for JSON."""
    confusions = np.zeros((len(ground_truths), num_classes, num_classes), dtype=np.int64)
    for index, (truth, predicted) in enumerate(zip(ground_truths, predictions, strict=True)):
        confusions[index] = confusion_matrix(truth, predicted, num_classes)
    total = confusions.sum(axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an image with no valid truth pixel
        per_image = np.nanmean(iou_per_class(confusions), axis=1)
    return {
        "miou": dataset_miou(total),
        "per_class_iou": [None if np.isnan(v) else float(v) for v in iou_per_class(total)],
        "confusion_matrix": total.tolist(),
        "per_image_mean_miou": float(np.mean(per_image)) if per_image.size else None,
        "pixel_accuracy": float(np.diag(total).sum() / max(total.sum(), 1)),
        "images": len(per_image),
    }


def format_score_table(scores, class_names):
    """A readable per-class IoU table for the log."""
    lines = [f"{'class':<16}{'IoU':>8}"]
    for name, iou in zip(class_names, scores["per_class_iou"], strict=True):
        lines.append(f"{name:<16}{'n/a' if iou is None else f'{iou:.4f}':>8}")
    lines.append(f"{'mIoU (dataset)':<16}{scores['miou']:>8.4f}")
    if scores["per_image_mean_miou"] is not None:
        lines.append(f"{'mIoU (per-image mean)':<22}{scores['per_image_mean_miou']:>8.4f}")
    return "\n".join(lines)
