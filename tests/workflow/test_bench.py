"""The benchmark's CPU path runs end to end on a few images, so bench/ cannot rot silently."""

import importlib.util
import json
import os
import subprocess
import sys

from conftest import REPO_ROOT


def test_gpu_bench_cpu_smoke(tmp_path):
    command = [sys.executable, str(REPO_ROOT / "bench" / "gpu_bench.py"), "--images", "4",
               "--cpu-smoke", "--out", str(tmp_path / "out")]  # fmt: skip
    env = {**os.environ, "BENCH_WORK": str(tmp_path / "work"), "NO_ALBUMENTATIONS_UPDATE": "1"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    table = result.stdout.split("\n4 images, cpu\n")[-1]
    assert table.startswith("| what | value |"), result.stdout[-3000:]
    for row in ("infer stage fp32", "resize stage (kornia)", "submission stage: re-read check"):
        assert row in table, table
    if importlib.util.find_spec("detectron2") is None:
        assert "detectron2 rows (floors, infer, snakemake, jobs, memory, seeds): skipped" in table
    else:
        assert "seed B loop" in table and "seed A loop" in table, table
    assert json.loads((tmp_path / "out" / "figures.json").read_text())


def test_ensemble_bench_cpu_smoke():
    command = [sys.executable, str(REPO_ROOT / "bench" / "ensemble_bench.py"), "--cpu-smoke"]
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    table = result.stdout.split("| what | seconds | ratio |\n")[-1]
    for row in ("sum of forward floors (2 members x 4 views)", "as built: one infer job per",
                "shared decode", "ttach.SegmentationTTAWrapper", "ours: TTAPredictor"):  # fmt: skip
        assert f"| {row}" in table, result.stdout[-3000:]
