"""infer.tta through the real workflow: a TTA change reruns inference and after, nothing before."""

import pytest
from conftest import run_snakemake, tiny_config
from test_reruns import output_mtimes, rewritten, val_file_names

from segsubmit.formats.competition_csv import validate_submission

pytestmark = pytest.mark.workflow


def test_tta_change_reruns_inference_and_after(user_workdir):
    run_snakemake(user_workdir)
    before = output_mtimes(user_workdir)
    tiny_config(user_workdir, infer={"tta": {"flips": ["h"], "scales": [0.5, 1]}})
    run_snakemake(user_workdir)
    changed = rewritten(before, output_mtimes(user_workdir))
    assert {"val/labels/0.npz", "val/labels/1.npz", "val/submission.csv"} <= set(changed)
    assert not [path for path in changed if path.startswith(("val/shards", "val/manifest"))]
    csv_path = user_workdir / "results" / "val" / "submission.csv"
    assert validate_submission(csv_path, val_file_names(user_workdir), 11, 32 * 32) == 12
    log = (user_workdir / "results" / "logs" / "infer" / "val" / "0.log").read_text()
    assert "test-time augmentation, 4 views per image" in log
