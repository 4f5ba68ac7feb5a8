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


def test_precision_bench_cpu_smoke(tmp_path):
    """bench/precision_bench.py: trains the demo recipe briefly, then every precision row."""
    command = [sys.executable, str(REPO_ROOT / "bench" / "precision_bench.py"), "--cpu-smoke",
               "--out", str(tmp_path / "out")]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    figures = json.loads((tmp_path / "out" / "precision.json").read_text())
    for config in ("fp32", "bf16", "fp32 + channels_last", "bf16 + channels_last"):
        row = figures[f"demo: floor {config}"]
        assert row["floor"] > 0 and 0 <= row["miou"] <= 1 and 0.5 < row["equal"] <= 1
