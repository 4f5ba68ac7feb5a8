"""GPU claims inside the real workflow's infer jobs (no GPU needed: the ids are what
CUDA_VISIBLE_DEVICES lists)."""

import re

import pytest
from conftest import SNAKEMAKE_ENV, run_snakemake


@pytest.mark.workflow
def test_infer_jobs_claim_among_the_visible_gpus_and_log_it(user_workdir, tmp_path):
    """The real workflow: each infer job claims before its device is chosen (CUDA can't start
    here, so the model then runs on the CPU)."""
    locks = tmp_path / "locks"
    extra = {"CUDA_VISIBLE_DEVICES": "3,5", "SEGSUBMIT_GPU_LOCKS": str(locks)}
    SNAKEMAKE_ENV.update(extra)
    try:
        run_snakemake(user_workdir, "--resources", "gpu=2")
    finally:
        for name in extra:
            del SNAKEMAKE_ENV[name]
    for shard in (0, 1):
        log = (user_workdir / "results" / "logs" / "infer" / "val" / f"{shard}.log").read_text()
        assert re.search(
            r"GPU [35] claimed \(visible: 3,5; lock .*\): CUDA_VISIBLE_DEVICES=[35]", log
        )
    assert {path.name for path in locks.iterdir()} <= {"3.lock", "5.lock"}
