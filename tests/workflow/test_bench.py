"""The benchmark's CPU path runs end to end on a few images, so bench/ cannot rot silently."""

import importlib.util
import json
import os
import re
import subprocess
import sys

from conftest import REPO_ROOT
from mmseg_support import mmseg_installed  # noqa: F401


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


def test_backends_bench_cpu_smoke(mmseg_installed):  # noqa: F811
    """bench/backends_bench.py's rows for smp, transformers and mmseg (tiny models, 64² images,
    CPU): the floor, every phase, the input side, the stage and its loop from the first batch per
    worker count, the libraries' own loops (MMSeg: inference_model per image), the summary."""
    command = [sys.executable, str(REPO_ROOT / "bench" / "backends_bench.py"), "--cpu-smoke"]
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    header = r"\n4 images 64², cpu, batch 2, median of 1, work folder \S+\n"
    table = re.split(header, result.stdout)[-1]
    assert table.startswith("| what | value |"), result.stdout[-3000:]
    for backend in ("smp", "transformers", "mmseg"):
        for row in ("model floor |", "phase decode (torchvision CPU, 1 process)",
                    "phase label file write", "infer stage, 0 workers",
                    "input side alone (decode, pin, copy, model_input), auto = ",
                    "first batch after the loader starts, 0 workers",
                    "infer stage loop from the first batch"):  # fmt: skip
            assert f"| {backend}: {row}" in table, (backend, row, table)
        assert f"| {backend} | " in table.split("| backend | model floor (s) |")[1]
    assert "| smp: phase argmax alone |" in table
    assert "| mmseg: phase host transform |" in table
    assert "| mmseg: MMSeg inference_model per image |" in table
    assert "| mmseg TTA, 2 images: MMSeg's TTA model, test_step per image" in table
    assert "pixels equal to the first row's: 1.00000" in table


def test_ensemble_bench_cpu_smoke():
    command = [sys.executable, str(REPO_ROOT / "bench" / "ensemble_bench.py"), "--cpu-smoke"]
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    table = result.stdout.split("| what | seconds | ratio |\n")[-1]
    for row in ("sum of forward floors (2 members x 4 views)", "infer_jobs per_member: one",
                "infer_jobs shared: one job", "  a fresh loader's first batch",
                "  the shared job writing labels alone",
                "  the shared job's loop with nothing written",
                "ttach.SegmentationTTAWrapper", "ours: TTAPredictor"):  # fmt: skip
        assert f"| {row}" in table, result.stdout[-3000:]


def test_pace_bench_cpu_smoke(tmp_path):
    """bench/pace_bench.py's rows from one tiny CPU call (the device runs it at 819 / 81,900)."""
    command = [sys.executable, str(REPO_ROOT / "bench" / "pace_bench.py"), "--cpu-smoke",
               "--profile-noop", "--out", str(tmp_path / "out")]  # fmt: skip
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
    assert "no-op rerun under cProfile" in result.stdout and (tmp_path / "out/noop.prof").exists()
    assert result.stdout.startswith("torch bytecode: ")  # start-up rows say what they include
    assert (tmp_path / "out" / "logs-6" / "infer").is_dir()  # the jobs' logs are kept
