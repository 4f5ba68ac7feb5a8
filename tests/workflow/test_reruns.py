"""The real workflow on tiny data: outputs, and what reruns after each kind of change."""

import json
import shutil
from pathlib import Path

import pytest
from conftest import REPO_ROOT, make_dataset, run_snakemake, save_random_model, tiny_config
from PIL import Image

from segsubmit.formats.competition_csv import validate_submission, write_submission
from segsubmit.formats.competition_csv_rows import RowFragment
from segsubmit.labels import maps_in_order
from segsubmit.manifest import Manifest, shard_of
from segsubmit.testing import write_submission_baseline

pytestmark = pytest.mark.workflow


def output_mtimes(workdir):
    """{relative path: mtime_ns} of every result file except logs, benchmarks and report figures."""
    results = Path(workdir) / "results"
    return {
        str(path.relative_to(results)): path.stat().st_mtime_ns
        for path in results.rglob("*")
        if path.is_file()
        and not {"logs", "benchmarks", "report"} & set(path.parts)
        and not path.name.startswith(".")
    }


def rewritten(before, after):
    """Result files written between two snapshots."""
    return sorted(path for path, mtime in after.items() if before.get(path) != mtime)


def val_file_names(workdir):
    coco = json.loads((Path(workdir) / "data" / "val.json").read_text())
    return [image["file_name"] for image in coco["images"]]


def test_demo_mode_runs_end_to_end(tmp_path):
    """No data or weights configured: the synthetic dataset and demo model are built."""
    (tmp_path / "config.yaml").write_text(
        "demo: {images: {train: 3, val: 3, test: 3}, image_size: 64, train_steps: 2, crop: 32}\n"
        "resize: {size: [32, 32]}\ninfer: {workers: 0}\ndata: {shards: 2}\n"
    )
    run_snakemake(tmp_path)
    results = tmp_path / "results"
    for split in ("test", "val"):
        names = [
            e["file_name"]
            for e in json.loads((results / split / "manifest.json").read_text())["images"]
        ]
        assert validate_submission(results / split / "submission.csv", names, 11, 32 * 32) == 3
        assert names[0].startswith("batch_0") and names[0].endswith(".jpg")
    score = json.loads((results / "val" / "score" / "32x32.json").read_text())
    assert 0.0 <= score["miou"] <= 1.0 and len(score["per_class_iou"]) == 11


def test_first_run_then_nothing_to_do(user_workdir):
    run_snakemake(user_workdir)
    csv_path = user_workdir / "results" / "val" / "submission.csv"
    assert validate_submission(csv_path, val_file_names(user_workdir), 11, 32 * 32) == 12
    assert json.loads((user_workdir / "results" / "val" / "submission.valid.json").read_text())[
        "valid"
    ]
    assert "miou" in json.loads(
        (user_workdir / "results" / "val" / "score" / "32x32.json").read_text()
    )
    second = run_snakemake(user_workdir)
    assert "Nothing to be done" in second.stdout + second.stderr


def test_gathered_csv_equals_the_one_pass_writer_and_a_corrupted_fragment_is_refused(
    user_workdir,
):
    """The CSV the submission job gathers from the resize jobs' row fragments has the bytes of
    the one-pass writer (and of the baseline's pandas writer) on the same maps; a fragment
    changed after its resize job makes the next run refuse the CSV before its final name."""
    run_snakemake(user_workdir)
    split = user_workdir / "results" / "val"
    entries = Manifest.load(split / "manifest.json").images
    maps = list(maps_in_order([e.id for e in entries], sorted(split.glob("resized/*.npz"))))
    names = [entry.file_name for entry in entries]
    write_submission(user_workdir / "one_pass.csv", names, maps)
    write_submission_baseline(user_workdir / "baseline.csv", names, maps)
    gathered = (split / "submission.csv").read_bytes()
    assert gathered == (user_workdir / "one_pass.csv").read_bytes()
    assert gathered == (user_workdir / "baseline.csv").read_bytes()
    fragment = split / "resized" / "1.competition_csv.rows"
    first_row = RowFragment.load(fragment).offsets[0]
    data = bytearray(fragment.read_bytes())
    data[first_row] = ord("9") if data[first_row] != ord("9") else ord("8")
    fragment.write_bytes(bytes(data))  # newer than submission.csv: the submission job reruns
    result = run_snakemake(user_workdir, check=False)
    log = (user_workdir / "results" / "logs" / "submission" / "val.log").read_text()
    assert result.returncode != 0
    assert "differs from the row checked into results/val/resized/1.competition_csv.rows" in log
    assert not (split / "submission.csv").exists() and not list(split.glob(".submission.csv*"))


def test_resize_backend_change_reruns_only_resize_and_after(user_workdir):
    run_snakemake(user_workdir)
    before = output_mtimes(user_workdir)
    csv_before = (user_workdir / "results" / "val" / "submission.csv").read_bytes()
    tiny_config(user_workdir, resize={"backend": "kornia"})
    run_snakemake(user_workdir)
    changed = rewritten(before, output_mtimes(user_workdir))
    assert changed == [
        "val/resized/0.competition_csv.rows",
        "val/resized/0.npz",
        "val/resized/1.competition_csv.rows",
        "val/resized/1.npz",
        "val/score/32x32.json",
        "val/score/32x32.txt",
        "val/submission.csv",
        "val/submission.valid.json",
    ]
    # 64 -> 32 is an integer factor: both backends give the same maps.
    assert (user_workdir / "results" / "val" / "submission.csv").read_bytes() == csv_before


def test_new_weights_rerun_inference_and_after(user_workdir):
    run_snakemake(user_workdir)
    before = output_mtimes(user_workdir)
    save_random_model(user_workdir / "model.pt", seed=1)
    run_snakemake(user_workdir)
    changed = rewritten(before, output_mtimes(user_workdir))
    assert "val/labels/0.npz" in changed and "val/labels/1.npz" in changed
    assert "val/submission.csv" in changed and "val/score/32x32.json" in changed
    assert not [path for path in changed if path.startswith(("val/shards", "val/manifest"))]


def test_added_image_reruns_only_its_shard(user_workdir, tmp_path_factory):
    run_snakemake(user_workdir)
    before = output_mtimes(user_workdir)
    extra_root = make_dataset(tmp_path_factory.mktemp("extra"), {"val": 1}, seed=7)
    extra = json.loads((extra_root / "val.json").read_text())
    new_image = {**extra["images"][0], "id": 999, "file_name": "batch_09_vt/0999.jpg"}
    (user_workdir / "data" / "batch_09_vt").mkdir()
    shutil.copy(
        extra_root / extra["images"][0]["file_name"], user_workdir / "data" / new_image["file_name"]
    )
    coco = json.loads((user_workdir / "data" / "val.json").read_text())
    coco["images"].append(new_image)
    (user_workdir / "data" / "val.json").write_text(json.dumps(coco))
    run_snakemake(user_workdir)
    changed = rewritten(before, output_mtimes(user_workdir))
    new_shard = shard_of(new_image["file_name"], 2)
    assert [p for p in changed if p.startswith("val/labels/")] == [f"val/labels/{new_shard}.npz"]
    assert [p for p in changed if p.startswith("val/resized/")] == [
        f"val/resized/{new_shard}.competition_csv.rows",
        f"val/resized/{new_shard}.npz",
    ]
    csv_path = user_workdir / "results" / "val" / "submission.csv"
    assert validate_submission(csv_path, val_file_names(user_workdir), 11, 32 * 32) == 13


def test_changed_image_content_reruns_only_its_shard(user_workdir):
    run_snakemake(user_workdir)
    before = output_mtimes(user_workdir)
    name = val_file_names(user_workdir)[5]
    image_path = user_workdir / "data" / name
    Image.open(image_path).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(image_path)
    run_snakemake(user_workdir)
    changed = rewritten(before, output_mtimes(user_workdir))
    assert [p for p in changed if p.startswith("val/labels/")] == [
        f"val/labels/{shard_of(name, 2)}.npz"
    ]


def copy_of_the_workflow(folder):
    """This workflow (Snakefile, rules, scripts, package, config, envs) copied to `folder`."""
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for part in ("workflow", "src", "config", "envs"):
        shutil.copytree(REPO_ROOT / part, folder / part, ignore=ignore)
    shutil.copy(REPO_ROOT / "Snakefile", folder / "Snakefile")
    return folder / "Snakefile"


def test_code_edits_rerun_only_the_rules_that_import_them(user_workdir, tmp_path_factory):
    """Snakemake's own code trigger, fed the import-closure digests: a metrics edit reruns the
    scoring, not inference; an edit of another backend's implementation reruns nothing; one of
    the configured backend's (torchvision) reruns inference."""
    snakefile = copy_of_the_workflow(tmp_path_factory.mktemp("workflow"))
    package = snakefile.parent / "src" / "segsubmit"
    run_snakemake(user_workdir, snakefile=snakefile)
    before = output_mtimes(user_workdir)
    with open(package / "metrics.py", "a") as module:
        module.write("\n# an edit\n")
    run_snakemake(user_workdir, snakefile=snakefile)
    after_metrics = output_mtimes(user_workdir)
    assert rewritten(before, after_metrics) == ["val/score/32x32.json", "val/score/32x32.txt"]
    with open(package / "backends" / "detectron2_model.py", "a") as module:
        module.write("\n# an edit\n")
    run_snakemake(user_workdir, snakefile=snakefile)
    assert rewritten(after_metrics, output_mtimes(user_workdir)) == []
    with open(package / "backends" / "torchvision_model.py", "a") as module:
        module.write("\n# an edit\n")
    run_snakemake(user_workdir, snakefile=snakefile)
    changed = rewritten(after_metrics, output_mtimes(user_workdir))
    assert "val/labels/0.npz" in changed and "val/labels/1.npz" in changed
    assert not [path for path in changed if path.startswith(("val/manifest", "val/ground_truth"))]


def edit_keeping_size_and_mtime(path):
    """Flip the JPEG's pixels, keeping its byte count (bytes after the end-of-image marker are
    ignored by decoders) and its modification time, as `exiftool -P` or `touch -r` do."""
    import io
    import os

    size, stat = path.stat().st_size, path.stat()
    flipped = Image.open(path).transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    for quality in range(95, 5, -5):
        buffer = io.BytesIO()
        flipped.save(buffer, format="JPEG", quality=quality)
        if len(buffer.getvalue()) <= size:
            break
    path.write_bytes(buffer.getvalue().ljust(size, b"\0"))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_content_fingerprint_reruns_after_an_edit_keeping_size_and_mtime(user_workdir):
    """`data.fingerprint: content` sees the edit the default (`stat`) misses by design."""
    from segsubmit.manifest import image_fingerprint

    tiny_config(user_workdir, data={"fingerprint": "content"})
    run_snakemake(user_workdir)
    before = output_mtimes(user_workdir)
    json_path, root = user_workdir / "data" / "val.json", user_workdir / "data"
    stat_before = image_fingerprint(json_path, root, "stat")
    name = val_file_names(user_workdir)[5]
    edit_keeping_size_and_mtime(root / name)
    assert image_fingerprint(json_path, root, "stat") == stat_before  # what stat cannot see
    run_snakemake(user_workdir)
    changed = rewritten(before, output_mtimes(user_workdir))
    assert "val/manifest.json" in changed
    assert [p for p in changed if p.startswith("val/labels/")] == [
        f"val/labels/{shard_of(name, 2)}.npz"
    ]
