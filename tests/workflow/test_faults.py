"""Faults through the real workflow: refused early, recoverable, never half-written."""

import json
import os
import signal
import subprocess
import time

import numpy as np
import pytest
import yaml
from conftest import (
    SNAKEMAKE_ENV,
    make_dataset,
    run_snakemake,
    save_random_model,
    snakemake_command,
    tiny_config,
)

pytestmark = pytest.mark.workflow


def test_missing_image_fails_before_inference(user_workdir):
    coco = json.loads((user_workdir / "data" / "val.json").read_text())
    missing = coco["images"][3]["file_name"]
    (user_workdir / "data" / missing).unlink()
    result = run_snakemake(user_workdir, check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"val.json: lists {missing!r}" in output
    assert not (user_workdir / "results" / "val" / "labels").exists()


def test_config_errors_stop_the_run_before_the_dag(tmp_path):
    """The schema's message reaches the user through the real snakemake (every case of it:
    tests/unit/test_config.py)."""
    (tmp_path / "bad.yaml").write_text("resize: {backend: kornai}\n")
    result = run_snakemake(tmp_path, "-n", configfile=tmp_path / "bad.yaml", check=False)
    assert result.returncode != 0
    assert "resize.backend: 'kornai' is not one of" in result.stdout + result.stderr


def killed_workdir(root, name):
    workdir = root / name
    make_dataset(workdir / "data", {"val": 18}, size=192)
    save_random_model(workdir / "model.pt")
    tiny_config(workdir, data={"shards": 3}, infer={"batch_size": 1, "workers": 0})
    return workdir


def wait_for_second_infer_job(workdir, process, timeout=120):
    labels = workdir / "results" / "val" / "labels"
    logs = workdir / "results" / "logs" / "infer" / "val"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        finished = list(labels.glob("*.npz")) if labels.exists() else []
        started = list(logs.glob("*.log")) if logs.exists() else []
        if len(finished) == 1 and len(started) == 2:
            return finished[0]
        time.sleep(0.05)
    raise AssertionError("the second inference job never started")


def test_kill_9_mid_shard_then_rerun_gives_identical_csv(tmp_path):
    reference = killed_workdir(tmp_path, "reference")
    run_snakemake(reference)
    workdir = killed_workdir(tmp_path, "killed")
    process = subprocess.Popen(
        snakemake_command(workdir, cores=1),
        cwd=workdir,
        env=SNAKEMAKE_ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    first_shard = wait_for_second_infer_job(workdir, process)
    time.sleep(2.0)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    finished_mtime = first_shard.stat().st_mtime_ns
    results = workdir / "results" / "val"
    assert not (results / "submission.csv").exists()
    for path in (results / "labels").glob("*.npz"):  # whatever has a final name is complete
        with np.load(path) as shard:
            assert shard["labels"].size == shard["shapes"].prod(axis=1).sum()
    run_snakemake(workdir, "--unlock")
    run_snakemake(workdir)
    assert not list((workdir / "results").rglob("*.tmp"))  # the killed job's temp file is gone
    assert first_shard.stat().st_mtime_ns == finished_mtime
    assert (results / "submission.csv").read_bytes() == (
        reference / "results" / "val" / "submission.csv"
    ).read_bytes()


def edit_val_json(workdir, change):
    path = workdir / "data" / "val.json"
    coco = json.loads(path.read_text())
    change(coco)
    path.write_text(json.dumps(coco))


def no_annotations(coco):
    coco["annotations"] = []


@pytest.mark.parametrize(
    ("config_text", "change", "expected"),
    [
        ("model: {mean: [.nan, 0.456, 0.406]}", None, "model.mean[0]: must be a finite number"),
        ("resize: {interpolation: bilinear}", None, "resize.interpolation: bilinear invents"),
        ("", no_annotations, "data.score: split 'val' is scored but"),
        ("data: {splits: [val, tset]}", None, "data.coco_json: 'data/tset.json' resolves to"),
        ('data: {coco_json: "{split}_{year}.json"}', None, "data.coco_json: '{split}_{year}"),
    ],
)
def test_config_is_refused_before_any_job_runs(user_workdir, config_text, change, expected):
    if change:
        edit_val_json(user_workdir, change)
    config = yaml.safe_load((user_workdir / "config.yaml").read_text())
    for section, values in (yaml.safe_load(config_text) or {}).items():
        config[section] = {**config.get(section, {}), **values}
    (user_workdir / "config.yaml").write_text(yaml.safe_dump(config))
    result = run_snakemake(user_workdir, check=False)
    assert result.returncode != 0 and expected in result.stdout + result.stderr
    assert not (user_workdir / "results").exists()  # no job ran


def test_paths_resolve_against_the_working_directory_wherever_snakemake_starts(
    user_workdir, tmp_path_factory
):
    """Started from another folder with --directory, relative paths mean the same files; a
    --directory without them is refused showing the resolved path."""
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    config = user_workdir / "config.yaml"
    command = snakemake_command(user_workdir, "-n", configfile=config)
    result = subprocess.run(
        command, cwd=elsewhere, capture_output=True, text=True, env=SNAKEMAKE_ENV
    )
    assert result.returncode == 0, result.stderr
    command = snakemake_command(elsewhere, "-n", configfile=config)
    result = subprocess.run(
        command, cwd=user_workdir, capture_output=True, text=True, env=SNAKEMAKE_ENV
    )
    assert result.returncode != 0
    assert f"data.root: 'data' resolves to {elsewhere / 'data'}" in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda c: c["images"][0].update(width="64"), "images[0].width must be a positive integer"),
        (
            lambda c: c["annotations"][0]["segmentation"][0].__setitem__(1, float("nan")),
            "annotations[0].segmentation polygon 0 must be a list of finite numbers",
        ),
        (lambda c: c["images"][0].update(file_name="{split}.jpg"), "which Snakemake or a shell"),
        (
            lambda c: c["images"][1].update(file_name=c["images"][0]["file_name"].upper()),
            "differ only in case or Unicode normalisation",
        ),
        (
            lambda c: c["images"][0].update(width=20000, height=20000),
            "20000x20000 = 400000000 pixels, above infer.max_image_pixels 100000000",
        ),
    ],
)
def test_malformed_json_fails_at_the_manifest_in_one_line(user_workdir, change, expected):
    edit_val_json(user_workdir, change)
    result = run_snakemake(user_workdir, check=False)
    output = result.stdout + result.stderr
    line = next(line for line in output.splitlines() if "val.json: " in line)
    assert result.returncode != 0 and expected in line
    assert "Traceback" not in output
    assert not (user_workdir / "results" / "val" / "labels").exists()


def test_zero_byte_image_with_blank_mode_gives_a_valid_submission(user_workdir):
    coco = json.loads((user_workdir / "data" / "val.json").read_text())
    (user_workdir / "data" / coco["images"][2]["file_name"]).write_bytes(b"")
    tiny_config(user_workdir, infer={"on_bad_image": "blank"})
    run_snakemake(user_workdir)
    report = json.loads((user_workdir / "results/val/submission.valid.json").read_text())
    assert report["valid"] and report["rows"] == 12
    log = (user_workdir / "results/logs/infer/val").glob("*.log")
    assert any("all-background masks for 1 unreadable" in path.read_text() for path in log)
