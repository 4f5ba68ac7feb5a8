"""The scores with an ignore label against two references on the same data: Detectron2's
SemSegEvaluator formula (written out from its source: detectron2 is not installed here) and
torchmetrics' MulticlassJaccardIndex(ignore_index=255)."""

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from torchmetrics.classification import MulticlassJaccardIndex

from segsubmit.metrics import confusion_matrix, score_images

IGNORE = 255


def detectron2_sem_seg_miou(truths, predictions, num_classes, ignore_label=IGNORE):
    """Detectron2's `SemSegEvaluator.process` + `evaluate`: truth pixels equal to the ignore
    label become class n; an (n+1) x (n+1) confusion matrix, rows prediction, columns truth,
    `np.bincount((n + 1) * pred + gt)`; tp = diagonal without the last entry, pos_gt / pos_pred
    = column / row sums of the n x n block (pixels of ignored truth drop out); IoU = tp /
    (pos_gt + pos_pred - tp) where pos_gt > 0 and the union > 0; mIoU = the mean of those
    (classes with truth pixels only). Returns (mIoU, per-class IoU with NaN elsewhere)."""
    size = num_classes + 1
    matrix = np.zeros((size, size), dtype=np.int64)
    for truth, prediction in zip(truths, predictions, strict=True):
        gt = truth.astype(np.int64).copy()
        gt[gt == ignore_label] = num_classes
        matrix += np.bincount(
            size * prediction.astype(np.int64).reshape(-1) + gt.reshape(-1), minlength=size**2
        ).reshape(size, size)
    iou = np.full(num_classes, np.nan)
    tp = matrix.diagonal()[:-1].astype(float)
    pos_gt = matrix[:-1, :-1].sum(axis=0).astype(float)
    pos_pred = matrix[:-1, :-1].sum(axis=1).astype(float)
    acc_valid = pos_gt > 0
    union = pos_gt + pos_pred - tp
    iou_valid = acc_valid & (union > 0)
    iou[iou_valid] = tp[iou_valid] / union[iou_valid]
    return float(np.sum(iou[iou_valid]) / np.sum(iou_valid)), iou


def torchmetrics_miou(truths, predictions, num_classes, ignore_index=IGNORE):
    metric = MulticlassJaccardIndex(num_classes, ignore_index=ignore_index, average="macro")
    for truth, prediction in zip(truths, predictions, strict=True):
        metric.update(
            torch.from_numpy(prediction.astype(np.int64))[None],
            torch.from_numpy(truth.astype(np.int64))[None],
        )
    return float(metric.compute())


def maps_with_ignore(seed, count=5, size=(24, 20), num_classes=6):
    rng = np.random.default_rng(seed)
    truths = rng.integers(0, num_classes, (count, *size), dtype=np.uint8)
    predictions = np.where(
        rng.random((count, *size)) < 0.7, truths, rng.integers(0, num_classes, truths.shape)
    ).astype(np.uint8)
    truths[:, :3] = IGNORE  # a band of ignored truth, where predictions are anything
    truths[rng.random(truths.shape) < 0.05] = IGNORE
    return truths, predictions


def test_ignored_pixels_count_nowhere():
    truths, predictions = maps_with_ignore(0)
    kept = truths != IGNORE
    scores = score_images(truths, predictions, 6, IGNORE)
    assert np.sum(scores["confusion_matrix"]) == kept.sum()
    changed = predictions.copy()
    changed[~kept] = (changed[~kept] + 1) % 6  # predictions under ignored truth do not matter
    assert score_images(truths, changed, 6, IGNORE) == scores


def test_agrees_with_detectron2_and_torchmetrics_on_the_same_data():
    truths, predictions = maps_with_ignore(1)
    scores = score_images(truths, predictions, 6, IGNORE)
    reference, per_class = detectron2_sem_seg_miou(truths, predictions, 6)
    # every class has truth pixels here, so the three conventions give one number
    assert np.isclose(scores["miou"], reference, rtol=0, atol=1e-12)
    assert np.isclose(scores["miou_truth_classes"], reference, rtol=0, atol=1e-12)
    assert np.allclose(scores["per_class_iou"], per_class, rtol=0, atol=1e-12)
    assert np.isclose(scores["miou"], torchmetrics_miou(truths, predictions, 6), atol=1e-6)


def test_a_class_only_predicted_separates_detectron2_from_the_competition_metric():
    """Detectron2 averages over classes with truth pixels; the competition (and MMSeg's,
    torchmetrics') nanmean counts a class that is only predicted as IoU 0."""
    truth = np.array([[0, 0, 1, IGNORE], [1, 1, 2, 2]], np.uint8)
    prediction = np.array([[0, 3, 1, 2], [1, 0, 2, 2]], np.uint8)  # class 3 has no truth
    scores = score_images([truth], [prediction], 5, IGNORE)
    reference, _ = detectron2_sem_seg_miou([truth], [prediction], 5)
    assert scores["miou"] == 0.5 == torchmetrics_miou([truth], [prediction], 5)
    assert np.isclose(scores["miou_truth_classes"], reference) and np.isclose(reference, 2 / 3)


@settings(max_examples=60, deadline=None)
@given(
    st.integers(2, 7).flatmap(
        lambda n: st.tuples(
            st.just(n),
            hnp.arrays(np.uint8, (3, 6, 5), elements=st.sampled_from([*range(n), IGNORE])),
            hnp.arrays(np.uint8, (3, 6, 5), elements=st.integers(0, n - 1)),
        )
    )
)
def test_any_maps_agree_with_both_references(case):
    num_classes, truths, predictions = case
    scores = score_images(truths, predictions, num_classes, IGNORE)
    if not (truths != IGNORE).any():
        assert scores["miou_truth_classes"] is None
        return
    reference, _ = detectron2_sem_seg_miou(truths, predictions, num_classes)
    assert np.isclose(scores["miou_truth_classes"], reference, rtol=0, atol=1e-12)
    expected = torchmetrics_miou(truths, predictions, num_classes)
    assert np.isclose(scores["miou"], expected, rtol=0, atol=1e-6)


def test_an_ignore_index_inside_the_class_range_is_left_out_too():
    truth = np.array([[0, 0, 1, 1]], np.uint8)
    prediction = np.array([[1, 1, 1, 1]], np.uint8)
    assert confusion_matrix(truth, prediction, 2, ignore_index=0).tolist() == [[0, 0], [0, 2]]
    assert score_images([truth], [prediction], 2, ignore_index=0)["miou"] == 1.0
    assert np.isclose(torchmetrics_miou([truth], [prediction], 2, ignore_index=0), 1.0)
