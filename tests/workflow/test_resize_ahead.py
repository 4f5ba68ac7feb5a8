"""Resize ahead (segsubmit.ahead) in the real workflow: the infer job's staged resize work is
adopted by the resize job, gives the bytes the resize job gives, and changes no rerun."""

import shutil
import zipfile
from pathlib import Path

import pytest
from conftest import run_snakemake, tiny_config
from test_reruns import output_mtimes, rewritten

from segsubmit.labels import read_label_shard

pytestmark = pytest.mark.workflow

AHEAD_ON = {"size": [32, 32], "ahead": True}  # on the CPU too (auto: only on a GPU)


def log_text(workdir, rule, shard):
    return (Path(workdir) / "results" / "logs" / rule / "val" / f"{shard}.log").read_text()


def results_of(workdir):
    """(submission.csv bytes, {shard: (ids, resized maps)}) of a finished run."""
    split = Path(workdir) / "results" / "val"
    resized = {path.name: read_label_shard(path) for path in sorted(split.glob("resized/*.npz"))}
    return (split / "submission.csv").read_bytes(), resized


def test_resized_ahead_equals_the_resize_job_and_reruns_stay_the_same(user_workdir, tmp_path):
    plain = tmp_path / "plain"
    shutil.copytree(user_workdir, plain)
    tiny_config(plain, resize={"ahead": False})
    run_snakemake(plain)
    tiny_config(user_workdir, resize=AHEAD_ON)
    run_snakemake(user_workdir)
    for shard in (0, 1):
        assert "resize ahead finished" in log_text(user_workdir, "infer", shard)
        assert "adopted the maps and fragments" in log_text(user_workdir, "resize", shard)
        assert "adopted" not in log_text(plain, "resize", shard)
    csv_ahead, resized_ahead = results_of(user_workdir)
    csv_plain, resized_plain = results_of(plain)
    assert csv_ahead == csv_plain
    assert resized_ahead.keys() == resized_plain.keys()
    for name, (ids, maps) in resized_ahead.items():
        assert ids == resized_plain[name][0] and (maps == resized_plain[name][1]).all()
    assert not list((user_workdir / "results").rglob("*.ahead*"))

    second = run_snakemake(user_workdir)  # the adopted files are newer than the labels
    assert "Nothing to be done" in second.stdout + second.stderr

    before = output_mtimes(user_workdir)
    tiny_config(user_workdir, resize={**AHEAD_ON, "backend": "kornia"})
    run_snakemake(user_workdir)  # a resize setting: the resize jobs rerun, inference does not
    changed = rewritten(before, output_mtimes(user_workdir))
    assert not [path for path in changed if "labels/" in path], "inference reran"
    assert "val/resized/0.npz" in changed and "val/submission.csv" in changed
    assert "adopted" not in log_text(user_workdir, "resize", 0)
    assert (user_workdir / "results" / "val" / "submission.csv").read_bytes() == csv_plain


def test_staged_files_of_another_label_file_are_not_adopted(user_workdir):
    """Staged files whose key names another label file (here: shard 0's label file given
    another token after they were staged, as a label file from elsewhere has) are deleted,
    and the resize job does the work itself; shard 1's are adopted."""
    tiny_config(user_workdir, resize=AHEAD_ON)
    run_snakemake(user_workdir, "--", "results/val/labels/0.npz", "results/val/labels/1.npz")
    assert (user_workdir / "results" / "val" / "resized" / "0.npz.ahead").exists()
    with zipfile.ZipFile(user_workdir / "results" / "val" / "labels" / "0.npz", "a") as labels:
        labels.comment = b"another label file"
    run_snakemake(user_workdir)
    log = log_text(user_workdir, "resize", 0)
    assert "not used (labels changed since they were staged)" in log and "adopted" not in log
    assert "adopted the maps" in log_text(user_workdir, "resize", 1)
    assert not list((user_workdir / "results").rglob("*.ahead*"))
