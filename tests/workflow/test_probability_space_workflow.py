"""The real workflow with resize.interpolation probability (the submission made of the infer
job's probability-space maps, validated) and pseudo-labels with a confidence threshold (what a
threshold change reruns); settings they cannot serve refused before any job runs."""

import json

import numpy as np
import pytest
from conftest import assert_refused_before_any_job, run_snakemake, set_config
from PIL import Image
from test_reruns import output_mtimes, rewritten, val_file_names

from segsubmit.formats.competition_csv import validate_submission
from segsubmit.labels import maps_in_order, read_label_shard
from segsubmit.manifest import Manifest

pytestmark = pytest.mark.workflow


def test_probability_resize_and_pseudo_label_threshold(user_workdir):
    set_config(user_workdir, pseudo_labels={"splits": ["val"], "threshold": 0.2})
    run_snakemake(user_workdir)
    before = output_mtimes(user_workdir)
    set_config(user_workdir, resize={"interpolation": "probability"})
    run_snakemake(user_workdir)  # val is scored: its infer jobs wrote area_labels already
    assert rewritten(before, output_mtimes(user_workdir)) == [
        "val/resized/0.competition_csv.rows",  # the resize jobs encode the CSV rows
        "val/resized/0.npz",
        "val/resized/1.competition_csv.rows",
        "val/resized/1.npz",
        "val/score/32x32.json",
        "val/score/32x32.txt",
        "val/submission.csv",
        "val/submission.valid.json",
    ]
    split = user_workdir / "results" / "val"
    csv_path = split / "submission.csv"
    assert validate_submission(csv_path, val_file_names(user_workdir), 11, 32 * 32) == 12
    assert json.loads((split / "submission.valid.json").read_text())["valid"]
    for shard in (0, 1):
        area_ids, area = read_label_shard(split / "area_labels" / f"{shard}.npz")
        resized_ids, resized = read_label_shard(split / "resized" / f"{shard}.npz")
        assert area_ids == resized_ids and np.array_equal(area, resized)
    assert "probability space (area mean, argmax)" in (split / "report/scores.html").read_text()

    entries = Manifest.load(split / "manifest.json").images
    confident = list(
        maps_in_order([e.id for e in entries], sorted(split.glob("confident_labels/*.npz")))
    )
    labels = list(maps_in_order([e.id for e in entries], sorted(split.glob("labels/*.npz"))))
    for entry, expected, label_map in zip(entries, confident, labels, strict=True):
        png = split / "pseudo_labels" / "ann_dir" / (entry.file_name.rsplit(".", 1)[0] + ".png")
        assert np.array_equal(np.asarray(Image.open(png)), expected)
        kept = expected != 255
        assert np.array_equal(expected[kept], label_map[kept])

    before = output_mtimes(user_workdir)
    set_config(user_workdir, pseudo_labels={"threshold": 0.5})
    run_snakemake(user_workdir)
    changed = rewritten(before, output_mtimes(user_workdir))
    pseudo = sorted(p for p in before if p.startswith("val/pseudo_labels/"))
    assert changed == ["val/confident_labels/0.npz", "val/confident_labels/1.npz", *pseudo]

    before = output_mtimes(user_workdir)
    set_config(user_workdir, pseudo_labels={"threshold": 0})  # off: the argmax maps as they are
    run_snakemake(user_workdir)
    assert rewritten(before, output_mtimes(user_workdir)) == pseudo
    for entry, label_map in zip(entries, labels, strict=True):
        png = split / "pseudo_labels" / "ann_dir" / (entry.file_name.rsplit(".", 1)[0] + ".png")
        assert np.array_equal(np.asarray(Image.open(png)), label_map)

    before = output_mtimes(user_workdir)
    set_config(user_workdir, resize={"size": [16, 16]})  # area_labels are made at that size
    run_snakemake(user_workdir)
    changed = rewritten(before, output_mtimes(user_workdir))
    assert {"val/labels/0.npz", "val/area_labels/1.npz", "val/ground_truth/16x16.npz"} <= set(
        changed
    )
    assert read_label_shard(split / "resized" / "0.npz")[1].shape[1:] == (16, 16)


@pytest.mark.parametrize(
    ("sections", "expected"),
    [
        (
            {"pseudo_labels": {"splits": ["val"], "threshold": 0.9, "ignore_index": 3}},
            "pseudo_labels.ignore_index: 3 is the class 'Paper pack'",
        ),
        (
            {"resize": {"interpolation": "block_max", "size": [48, 48]}},
            "block_max needs sides that are whole multiples of resize.size, and 64x64 -> 48x48",
        ),
    ],
)
def test_settings_they_cannot_serve_are_refused_before_any_job_runs(
    user_workdir, sections, expected
):
    set_config(user_workdir, **sections)
    assert_refused_before_any_job(user_workdir, expected)
