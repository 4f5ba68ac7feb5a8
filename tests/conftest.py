"""Shared fixtures: tiny COCO datasets in the competition format and real snakemake runs."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from segsubmit.testing import CLASSES, make_dataset, save_random_model

REPO_ROOT = Path(__file__).resolve().parents[1]
__all__ = ["CLASSES", "make_dataset", "save_random_model"]  # builders live in segsubmit.testing


def tiny_config(workdir, **overrides):
    """A config for a fast run on user data in `workdir` (val split only, 2 shards)."""
    config = {
        "data": {"root": "data", "splits": ["val"], "score": ["val"], "shards": 2},
        "model": {"weights": "model.pt"},
        "infer": {"batch_size": 4, "workers": 0},
        "resize": {"size": [32, 32]},
    }
    for section, values in overrides.items():
        merged = isinstance(values, dict)
        config[section] = {**config.get(section, {}), **values} if merged else values
    path = Path(workdir) / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def snakemake_command(workdir, *extra, configfile="config.yaml", cores=2, snakefile=None):
    """The real snakemake CLI on this repository's workflow (or `snakefile`), run in `workdir`."""
    return [
        sys.executable, "-m", "snakemake", "--snakefile", str(snakefile or REPO_ROOT / "Snakefile"),
        "--directory", str(workdir), "--cores", str(cores), "--resources", "gpu=1",
        "--configfile", str(configfile), *extra,
    ]  # fmt: skip


SNAKEMAKE_ENV = {
    **os.environ,
    "PYTHONUNBUFFERED": "1",
    "NO_ALBUMENTATIONS_UPDATE": "1",
    # jobs run in other folders: keep e.g. PYTHONPATH=.deps/detectron2 pointing at the same place
    "PYTHONPATH": os.pathsep.join(
        os.path.abspath(entry)
        for entry in os.environ.get("PYTHONPATH", "").split(os.pathsep)
        if entry
    ),
}


def run_snakemake(workdir, *extra, configfile="config.yaml", check=True, snakefile=None):
    """Run snakemake to completion; fail the test with its output if it fails and `check`."""
    command = snakemake_command(workdir, *extra, configfile=configfile, snakefile=snakefile)
    result = subprocess.run(command, capture_output=True, text=True, env=SNAKEMAKE_ENV, cwd=workdir)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake failed:\n{result.stdout}\n{result.stderr}")
    return result


def set_config(workdir, **sections):
    """Merge `sections` into `workdir`/config.yaml, section by section."""
    path = Path(workdir) / "config.yaml"
    config = yaml.safe_load(path.read_text())
    for section, values in sections.items():
        config[section] = {**config.get(section, {}), **values}
    path.write_text(yaml.safe_dump(config))


def assert_refused_before_any_job(workdir, expected):
    """snakemake in `workdir` fails with the one line `expected`, no traceback, and no job ran."""
    result = run_snakemake(workdir, check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and expected in output, output
    assert "Traceback" not in output
    assert not (Path(workdir) / "results").exists()  # no job ran
    shutil.rmtree(Path(workdir) / ".snakemake", ignore_errors=True)


@pytest.fixture
def user_workdir(tmp_path):
    """A workdir holding a 12-image val split, a random model and a tiny config."""
    make_dataset(tmp_path / "data", {"train": 1, "val": 12, "test": 1})
    save_random_model(tmp_path / "model.pt")
    tiny_config(tmp_path)
    return tmp_path
