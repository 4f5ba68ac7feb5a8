"""Faults through the real workflow: refused early, recoverable, never half-written."""

import json
import os
import signal
import subprocess
import time

import numpy as np
import pytest
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


@pytest.mark.parametrize(
    ("config_text", "expected"),
    [
        ("resize: {backend: kornai}", ["kornai", "albumentations", "kornia"]),
        ("infer: {batch_sise: 4}", ["batch_sise"]),
        ("data: {shards: two}", ["two", "integer"]),
        ("model: {backend: onnx}", ["onnx", "torchvision", "torchscript", "detectron2"]),
    ],
)
def test_config_errors_name_the_key_and_allowed_values(tmp_path, config_text, expected):
    (tmp_path / "bad.yaml").write_text(config_text + "\n")
    result = run_snakemake(tmp_path, "-n", configfile=tmp_path / "bad.yaml", check=False)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    for word in expected:
        assert word in output


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
    assert first_shard.stat().st_mtime_ns == finished_mtime
    assert (results / "submission.csv").read_bytes() == (
        reference / "results" / "val" / "submission.csv"
    ).read_bytes()
