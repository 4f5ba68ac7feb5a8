"""segsubmit.ahead: the resize-ahead process against the resize job's own stage."""

import logging
from pathlib import Path

import numpy as np
import pytest

from segsubmit import ahead
from segsubmit.ahead import AheadPlan, ResizeAhead, adopt_staged
from segsubmit.fragments import resize_shard_stage
from segsubmit.labels import label_shard_writer, read_label_shard

CLASSES = [f"c{i}" for i in range(11)]
SIZE = [16, 16]


def plan_in(folder, name="ahead"):
    params = dict(backend="albumentations", size=SIZE, interpolation="nearest",
                  allow_bilinear_labels=False, fragment_formats=["competition_csv"],
                  class_names=CLASSES, code="0")  # fmt: skip
    fragments = {"competition_csv": str(folder / f"{name}.competition_csv.rows")}
    return AheadPlan(str(folder / f"{name}.npz"), fragments, params, mode=True)


def label_maps(count, seed=0):
    rng = np.random.default_rng(seed)
    shapes = [(32, 32), (24, 40)]
    return [rng.integers(0, 11, shapes[i % 2], dtype=np.uint8) for i in range(count)]


def infer_side(plan, labels_path, maps, warnings=("a warning",)):
    """What the infer job does: its label file with the token, each map queued as written."""
    with ResizeAhead(plan, len(maps)) as resize_ahead:
        total = sum(m.size for m in maps)
        with label_shard_writer(labels_path, total, list(warnings), resize_ahead.token) as add:
            for image_id, label_map in enumerate(maps):
                add(image_id, label_map)
                resize_ahead.add(image_id, label_map)
        resize_ahead.finish(list(warnings), labels_path)
    return resize_ahead


def test_adopted_outputs_equal_the_resize_jobs(tmp_path):
    maps = label_maps(70)  # two resize spans, three row tasks
    labels = tmp_path / "labels.npz"
    plan = plan_in(tmp_path)
    assert infer_side(plan, labels, maps).reason is None
    assert adopt_staged(plan, labels)
    reference = plan_in(tmp_path, "reference")
    resize_shard_stage(str(labels), tmp_path / "reference.npz", "albumentations", SIZE,
                       "nearest", False, fragments=reference.fragments, class_names=CLASSES,
                       threads=2)  # fmt: skip
    for (final, _), (expected, _) in zip(plan.outputs[1:], reference.outputs[1:], strict=True):
        assert Path(final).read_bytes() == Path(expected).read_bytes()
    (ids, resized), (ids_expected, resized_expected) = (
        read_label_shard(plan.resized),
        read_label_shard(reference.resized),
    )
    assert ids == ids_expected and np.array_equal(resized, resized_expected)
    assert not list(tmp_path.glob("*.ahead*"))


def test_falling_behind_abandons_and_leaves_nothing(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(ahead, "QUEUE_MAPS", 2)  # the process is still starting: it lags
    monkeypatch.setattr(ahead, "WAIT_SHARE", 0.0)  # and inference may not wait for it
    plan = plan_in(tmp_path)
    with caplog.at_level(logging.WARNING):
        resize_ahead = infer_side(plan, tmp_path / "labels.npz", label_maps(200))
    assert resize_ahead.reason.startswith("2 maps behind inference after ")
    assert "resize ahead abandoned (2 maps behind inference after " in caplog.text
    assert not list(tmp_path.glob("*.ahead*")) and not list(tmp_path.glob(".ahead*"))
    assert not adopt_staged(plan, tmp_path / "labels.npz")


def test_inference_waits_for_a_lagging_process_within_its_share(tmp_path, monkeypatch):
    monkeypatch.setattr(ahead, "QUEUE_MAPS", 2)
    monkeypatch.setattr(ahead, "WAIT_SHARE", 1e6)  # any wait is within the share
    plan, labels = plan_in(tmp_path), tmp_path / "labels.npz"
    resize_ahead = infer_side(plan, labels, label_maps(200))
    assert resize_ahead.reason is None and resize_ahead.waited > 0
    assert resize_ahead.queued == 200 and adopt_staged(plan, labels)


def test_a_failure_in_the_process_abandons_with_its_reason(tmp_path, caplog):
    maps = label_maps(5)
    maps[3][0, 0] = 11  # a class outside the 11 names: the row check refuses it
    plan = plan_in(tmp_path)
    with caplog.at_level(logging.WARNING):
        resize_ahead = infer_side(plan, tmp_path / "labels.npz", maps)
    assert "SegsubmitError" in resize_ahead.reason and "class 11" in resize_ahead.reason
    assert not list(tmp_path.glob("*.ahead*"))


def test_an_infer_job_failing_midway_stops_the_process(tmp_path):
    plan = plan_in(tmp_path)
    with pytest.raises(RuntimeError), ResizeAhead(plan, 10) as resize_ahead:
        resize_ahead.add(0, label_maps(1)[0])
        raise RuntimeError("the model failed")
    assert resize_ahead.reason == "the infer job failed: RuntimeError"
    assert not resize_ahead.process.is_alive()
    assert not list(tmp_path.glob("*.ahead*"))
