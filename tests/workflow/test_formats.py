"""Every submission format written by the real workflow, checked by `validate-submission`, a
corrupted copy refused; a format's impossible options refused before any job runs."""

import json
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import yaml
from conftest import assert_refused_before_any_job, run_snakemake, set_config

from segsubmit.labels import maps_in_order
from segsubmit.manifest import Manifest
from segsubmit.testing import CLASSES

pytestmark = pytest.mark.workflow

FORMATS = ["competition_csv", "kaggle_rle", "png_zip", "coco_rle"]
FILES = {
    "competition_csv": "submission.csv",
    "kaggle_rle": "submission_rle.csv",
    "png_zip": "submission_png.zip",
    "coco_rle": "submission_coco.json",
}
CITYSCAPES_LIKE = {name: 7 + index for index, name in enumerate(CLASSES)}


def validate(path, manifest, format_name, config):
    command = [sys.executable, "-m", "segsubmit.cli", "validate-submission", str(path)]
    command += [str(manifest), "--format", format_name, "--config", str(config)]
    return subprocess.run(command, capture_output=True, text=True)


def corrupt_copy(path, format_name, target):
    """A copy of the file with one plausible corruption of its format."""
    if format_name == "png_zip":
        with zipfile.ZipFile(path) as source, zipfile.ZipFile(target, "w") as copy:
            for info in source.infolist()[:-1]:  # the last image's PNG lost
                copy.writestr(info, source.read(info))
    elif format_name == "coco_rle":
        records = json.loads(path.read_text())
        records[0]["segmentation"]["size"] = [16, 16]  # an RLE of another size
        target.write_text(json.dumps(records))
    else:
        lines = path.read_text().splitlines()
        lines[1], lines[2] = lines[2], lines[1]  # two rows swapped
        target.write_text("\n".join(lines) + "\n")
    return target


def test_every_format_written_by_the_workflow_validates_and_a_corrupted_copy_does_not(
    user_workdir,
):
    set_config(
        user_workdir,
        submission={
            "formats": FORMATS,
            "png_zip": {"label_ids": CITYSCAPES_LIKE},
            "kaggle_rle": {"size": [32, 32]},
        },
    )
    run_snakemake(user_workdir)
    split = user_workdir / "results" / "val"
    report = json.loads((split / "submission.valid.json").read_text())
    assert report["valid"] and sorted(report["files"]) == sorted(FORMATS)
    manifest = split / "manifest.json"
    config = user_workdir / "config.yaml"
    for format_name in FORMATS:
        path = split / FILES[format_name]
        result = validate(path, manifest, format_name, config)
        assert result.returncode == 0 and result.stdout.startswith("valid:"), result.stderr
        bad = validate(corrupt_copy(path, format_name, path.with_name("bad_" + path.name)),
                       manifest, format_name, config)  # fmt: skip
        assert bad.returncode == 1 and bad.stderr.startswith("invalid: "), bad.stderr
        assert bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr
    # the files hold the submission's maps: decode two of them and compare
    entries = Manifest.load(manifest).images
    maps = list(maps_in_order([e.id for e in entries], sorted(split.glob("resized/*.npz"))))
    from segsubmit.formats.kaggle_rle import decode_rle

    rows = (split / "submission_rle.csv").read_text().splitlines()
    assert rows[0] == "image_name,class,rle" and len(rows) == 1 + 12 * 10
    name, class_name, rle = rows[1 + 10 * 3 + 1].split(",")  # image 3, class 2 (Paper)
    assert name == entries[3].file_name and class_name == "Paper"
    assert np.array_equal(decode_rle(rle, (32, 32)), maps[3] == 2)
    from PIL import Image

    with zipfile.ZipFile(split / "submission_png.zip") as archive:
        assert [info.filename for info in archive.infolist()] == [
            e.file_name.rsplit(".", 1)[0] + ".png" for e in entries
        ]
        with archive.open(archive.infolist()[5]) as member:
            assert np.array_equal(np.asarray(Image.open(member)), maps[5] + 7)


@pytest.mark.parametrize(
    ("submission", "classes", "expected"),
    [
        (
            {"formats": ["png_zip"], "png_zip": {"label_ids": {"Background": 0, "Paper": 2}}},
            None,
            "submission.png_zip.label_ids: no id for 'General trash', 'Paper pack'",
        ),
        (
            {"formats": ["competition_csv", "kaggle_rle"], "kaggle_rle": {"size": [2048, 2048]}},
            None,
            "submission.kaggle_rle.size: the competition decodes the RLE at [2048, 2048] but "
            "resize.size is [32, 32]",
        ),
        (
            {"formats": ["png_zip"]},
            [f"class {i}" for i in range(300)],
            "classes: ['class 0', 'class 1',",  # the schema's maxItems 256 comes first
        ),
    ],
)
def test_impossible_format_options_are_refused_before_any_job_runs(
    user_workdir, submission, classes, expected
):
    set_config(user_workdir, submission=submission)
    if classes:
        config = yaml.safe_load((user_workdir / "config.yaml").read_text())
        (user_workdir / "config.yaml").write_text(yaml.safe_dump({**config, "classes": classes}))
    assert_refused_before_any_job(user_workdir, expected)


def test_label_png_ground_truth_with_ignore_label_and_block_max_resize(user_workdir):
    """VOC/Cityscapes-style truth: one label PNG per image (ids offset by 100, a band of 255 =
    ignore), the json's annotations dropped; predictions resized by a 2x2 block max."""
    from PIL import Image

    from segsubmit.ground_truth import load_ground_truth, rasterize_ground_truth
    from segsubmit.labels import read_label_shard
    from segsubmit.metrics import score_images
    from segsubmit.resize import resize_label_maps

    data = user_workdir / "data"
    coco_api, class_of = load_ground_truth(data / "val.json", CLASSES)
    label_ids = {name: 100 + index for index, name in enumerate(CLASSES)}
    expected_truths = {}
    for image in coco_api.dataset["images"]:
        truth = rasterize_ground_truth(coco_api, image["id"], class_of)
        truth[:4] = 255
        png = data / "masks" / "val" / image["file_name"].rsplit(".", 1)[0]
        png = png.with_suffix(".png")
        png.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.where(truth == 255, 255, truth + 100).astype(np.uint8)).save(png)
        expected_truths[image["id"]] = truth
    coco = json.loads((data / "val.json").read_text())
    (data / "val.json").write_text(json.dumps({**coco, "annotations": []}))
    set_config(
        user_workdir,
        data={"masks": {"folder": "masks/{split}", "label_ids": label_ids}},
        score={"ignore_index": 255},
        resize={"interpolation": "block_max"},
    )
    run_snakemake(user_workdir)
    split = user_workdir / "results" / "val"
    score = json.loads((split / "score" / "32x32.json").read_text())
    assert score["ignore_index"] == 255
    ids, truths = read_label_shard(split / "ground_truth" / "32x32.npz")
    for image_id, truth in zip(ids, truths, strict=True):
        full = expected_truths[image_id]
        assert np.array_equal(truth, resize_label_maps([full], (32, 32), "albumentations")[0])
    maps = list(maps_in_order(ids, sorted(split.glob("resized/*.npz"))))
    labels = list(maps_in_order(ids, sorted(split.glob("labels/*.npz"))))
    assert np.array_equal(
        np.stack(maps), np.stack([m.reshape(32, 2, 32, 2).max((1, 3)) for m in labels])
    )
    expected = score_images(list(truths), maps, len(CLASSES), 255)
    assert score["miou"] == expected["miou"] and sum(map(sum, score["confusion_matrix"])) == (
        (truths != 255).sum()
    )
    report_log = (user_workdir / "results" / "logs" / "report_figures" / "val.log").read_text()
    assert "resized block_max: mIoU" in report_log
