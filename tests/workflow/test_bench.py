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


def test_pace_bench_cpu_smoke(tmp_path):
    """bench/pace_bench.py's rows from one tiny CPU call (the device runs it at 819 / 81,900)."""
    command = [sys.executable, str(REPO_ROOT / "bench" / "pace_bench.py"), "--cpu-smoke",
               "--out", str(tmp_path / "out")]  # fmt: skip
    env = {**os.environ, "BENCH_WORK": str(tmp_path / "work"), "NO_ALBUMENTATIONS_UPDATE": "1"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    table = result.stdout.split("\n\n")[-1]
    for row in ("cold run, 6 images", "6 images: infer jobs", "cold run minus the infer jobs",
                "no-op rerun", "cold run, 12 images", "12 images: submission jobs",
                "peak RSS growth, infer, 6 -> 12"):  # fmt: skip
        assert row in table, table
    assert "seed script: skipped" in table or "seed script, fresh process" in table
    figures = json.loads((tmp_path / "out" / "pace.json").read_text())
    assert figures["figures"]["cold run, 12 images"] > figures["figures"]["  12 images: infer jobs"]
    assert set(figures["peak_rss_mib"]["large"]) >= {"manifest", "infer", "resize", "submission"}
