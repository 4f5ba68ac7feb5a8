"""Both entry points, run directly and as a module, schedule the same jobs in a fresh folder
with a config of the user's own (an included file's default target does not carry over to the
including one: a silent "Nothing to be done" is what this guards against)."""

import re
import subprocess
import sys

import pytest
from conftest import REPO_ROOT, SNAKEMAKE_ENV, make_dataset, save_random_model, tiny_config

pytestmark = pytest.mark.workflow

ENTRY_POINTS = {
    "top-level": REPO_ROOT / "Snakefile",
    "catalog": REPO_ROOT / "workflow" / "Snakefile",
}
IMPORTING = """\
configfile: "config.yaml"


module segsubmit:
    snakefile: "{snakefile}"
    config: config


use rule * from segsubmit as segsubmit_*
"""


def scheduled_jobs(workdir, snakefile):
    """{rule: count} of the dry run's job table (module rules without their prefix)."""
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--snakefile", str(snakefile), "--cores", "1",
         "--directory", str(workdir), "--configfile", "config.yaml"],
        capture_output=True, text=True, env=SNAKEMAKE_ENV, cwd=workdir,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Nothing to be done" not in result.stdout
    table = re.findall(r"^(?:segsubmit_)?(\w+)\s+(\d+)$", result.stdout, re.MULTILINE)
    return {rule: int(count) for rule, count in table if rule != "total"}


@pytest.fixture
def fresh_folder(tmp_path):
    make_dataset(tmp_path / "data", {"val": 4}, size=32)
    save_random_model(tmp_path / "model.pt")
    tiny_config(tmp_path)
    return tmp_path


@pytest.mark.parametrize("entry_point", sorted(ENTRY_POINTS))
def test_each_entry_point_schedules_the_workflow_directly_and_as_a_module(
    fresh_folder, entry_point
):
    snakefile = ENTRY_POINTS[entry_point]
    direct = scheduled_jobs(fresh_folder, snakefile)
    (fresh_folder / "Snakefile").write_text(IMPORTING.format(snakefile=snakefile))
    as_module = scheduled_jobs(fresh_folder, fresh_folder / "Snakefile")
    assert {"manifest", "submission", "ground_truth", "score", "report_figures"} <= set(direct)
    for jobs in (direct, as_module):  # the target rules: `all`, and the top-level's `default`
        jobs.pop("all", None)
        jobs.pop("default", None)
    assert as_module == direct
