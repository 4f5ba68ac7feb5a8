"""Shard predictions shared between checkouts through Snakemake's between-workflow cache
(`--cache`, `$SNAKEMAKE_OUTPUT_CACHE`), with the real snakemake."""

import shutil
from pathlib import Path

import pytest
from conftest import REPO_ROOT, SNAKEMAKE_ENV, run_snakemake, tiny_config

from segsubmit.labels import read_label_shard
from segsubmit.manifest import Manifest

pytestmark = pytest.mark.workflow

CHECKOUT_PARTS = ("Snakefile", "workflow", "src", "config", "envs", "profiles")
# labels and area_labels (val is scored: the report's probability-space row): an entry each
OUTPUTS = 2


def second_checkout(folder):
    """A copy of this repository's workflow in another folder (as a teammate's clone)."""
    folder.mkdir()
    for part in CHECKOUT_PARTS:
        source = REPO_ROOT / part
        if source.is_dir():
            ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
            shutil.copytree(source, folder / part, ignore=ignore)
        elif source.exists():
            shutil.copy2(source, folder / part)
    return folder / "Snakefile"


def run_cached(workdir, cache, *extra, snakefile=None):
    """snakemake --cache with the cache folder in the environment."""
    SNAKEMAKE_ENV["SNAKEMAKE_OUTPUT_CACHE"] = str(cache)
    try:
        return run_snakemake(workdir, "--cache", *extra, snakefile=snakefile)
    finally:
        del SNAKEMAKE_ENV["SNAKEMAKE_OUTPUT_CACHE"]


def copy_inputs(workdir, folder):
    """A new workdir with the data, model and config of `workdir`."""
    folder.mkdir()
    for name in ("data", "model.pt", "config.yaml"):
        source = workdir / name
        (shutil.copytree if source.is_dir() else shutil.copy2)(source, folder / name)
    return folder


def labels_of(workdir, shard):
    return Path(workdir) / "results" / "val" / "labels" / f"{shard}.npz"


def test_second_checkout_reuses_each_shard_and_shards_never_collide(user_workdir, tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    first = run_cached(user_workdir, cache)
    assert (first.stdout + first.stderr).count("to cache.") == 2 * OUTPUTS
    stored = {path: path.read_bytes() for path in cache.iterdir()}
    assert len(stored) == len(set(stored.values())) == 2 * OUTPUTS  # entries per shard

    teammate = copy_inputs(user_workdir, tmp_path / "teammate")
    snakefile = second_checkout(tmp_path / "checkout")
    second = run_cached(teammate, cache, snakefile=snakefile)
    output = second.stdout + second.stderr
    assert output.count("from cache.") == 2 * OUTPUTS and "to cache." not in output
    for shard in (0, 1):  # restored, not recomputed: the job's script never ran (empty log)
        restored = labels_of(teammate, shard).read_bytes()
        assert restored == labels_of(user_workdir, shard).read_bytes()
        assert (teammate / "results" / "logs" / "infer" / "val" / f"{shard}.log").read_text() == ""
    csv = Path("results") / "val" / "submission.csv"
    assert (teammate / csv).read_bytes() == (user_workdir / csv).read_bytes()

    # The same data in 3 shards: shards 0 and 1 hold other images, so they get other keys.
    resharded = copy_inputs(user_workdir, tmp_path / "resharded")
    tiny_config(resharded, data={"shards": 3})
    third = run_cached(resharded, cache, snakefile=snakefile)
    assert (third.stdout + third.stderr).count("to cache.") == 3 * OUTPUTS
    assert len(list(cache.iterdir())) == 5 * OUTPUTS
    for shard in range(3):
        shard_file = resharded / "results" / "val" / "shards" / f"{shard}.json"
        image_ids = [entry.id for entry in Manifest.load(shard_file).images]
        assert list(read_label_shard(labels_of(resharded, shard))[0]) == image_ids
    assert all(path.read_bytes() == content for path, content in stored.items())


def test_cache_without_its_folder_fails_in_one_line(user_workdir):
    result = run_snakemake(user_workdir, "--cache", "-n", check=False)
    assert result.returncode != 0
    assert "--cache: set SNAKEMAKE_OUTPUT_CACHE to a folder" in result.stdout + result.stderr


def test_runs_without_cache_are_unchanged(user_workdir):
    result = run_snakemake(user_workdir, "-n")
    assert "eligible for caching" not in result.stdout + result.stderr
