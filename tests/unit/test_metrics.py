"""mIoU: the baseline's formula, checked against torchmetrics; GT rasterization order."""

import json

import numpy as np
import pytest
import torch
from torchmetrics.classification import MulticlassJaccardIndex

from segsubmit.ground_truth import load_ground_truth, rasterize_ground_truth
from segsubmit.metrics import confusion_matrix, dataset_miou, score_images
from segsubmit.testing import CLASSES


def test_miou_matches_torchmetrics_batch_by_batch():
    rng = np.random.default_rng(0)
    truths = rng.integers(0, 11, (12, 64, 64), np.uint8)
    predictions = np.where(
        rng.random((12, 64, 64)) < 0.7, truths, rng.integers(0, 11, (12, 64, 64))
    ).astype(np.uint8)
    metric = MulticlassJaccardIndex(num_classes=11, average="macro")
    for start in range(0, 12, 4):
        metric.update(
            torch.from_numpy(predictions[start : start + 4]).long(),
            torch.from_numpy(truths[start : start + 4]).long(),
        )
    ours = score_images(truths, predictions, 11)["miou"]
    assert ours == pytest.approx(metric.compute().item(), abs=1e-6)


def test_absent_classes_are_skipped_and_one_sided_count_zero():
    truth = np.array([[0, 0, 1, 1]], np.uint8)
    prediction = np.array([[0, 0, 1, 2]], np.uint8)
    scores = score_images([truth], [prediction], 4)
    assert scores["per_class_iou"] == [1.0, 0.5, 0.0, None]
    assert scores["miou"] == pytest.approx(0.5)


def test_per_image_mean_is_a_different_number():
    truths = [np.zeros((2, 2), np.uint8), np.array([[1, 1], [1, 0]], np.uint8)]
    predictions = [np.zeros((2, 2), np.uint8), np.zeros((2, 2), np.uint8)]
    scores = score_images(truths, predictions, 2)
    assert scores["per_image_mean_miou"] == pytest.approx((1.0 + 0.125) / 2)
    assert scores["miou"] == pytest.approx(
        dataset_miou(
            confusion_matrix(
                np.concatenate([t.ravel() for t in truths]),
                np.concatenate([p.ravel() for p in predictions]),
                2,
            )
        )
    )


def test_pixels_outside_class_range_are_ignored():
    truth = np.array([255, 0, 1], np.uint8)
    prediction = np.array([1, 0, 1], np.uint8)
    assert confusion_matrix(truth, prediction, 2).sum() == 2


def test_smaller_objects_drawn_on_top_and_categories_by_name(tmp_path):
    square = lambda x0, x1: [[x0, x0, x1, x0, x1, x1, x0, x1]]  # noqa: E731
    coco = {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 20, "height": 20}],
        "categories": [{"id": 7, "name": "Battery"}, {"id": 3, "name": "Paper"}],
        "annotations": [
            {
                "id": 1,
                "image_id": 1,
                "category_id": 7,
                "segmentation": square(8, 12),
                "area": 16,
                "bbox": [8, 8, 4, 4],
                "iscrowd": 0,
            },
            {
                "id": 2,
                "image_id": 1,
                "category_id": 3,
                "segmentation": square(2, 18),
                "area": 256,
                "bbox": [2, 2, 16, 16],
                "iscrowd": 0,
            },
        ],
    }
    (tmp_path / "val.json").write_text(json.dumps(coco))
    coco_api, class_of_category = load_ground_truth(tmp_path / "val.json", CLASSES)
    assert class_of_category == {7: CLASSES.index("Battery"), 3: 2}
    mask = rasterize_ground_truth(coco_api, 1, class_of_category)
    assert mask[10, 10] == CLASSES.index("Battery")
    assert mask[4, 4] == 2 and mask[0, 0] == 0
