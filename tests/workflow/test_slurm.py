"""The workflow on a real one-node SLURM cluster through profiles/slurm: every job goes through
sbatch, the infer jobs to the `gpu` partition with one GPU, and the outputs are byte-identical
to a local run of the same config.

The cluster (Debian's slurmctld/slurmd/munge, installed with apt-get when missing) is started
by a session fixture and stopped by its pids; see tests/slurm_cluster.py. Without root or
packages the test skips and says why.
"""

import importlib.util
import shutil
import subprocess
import sys
import time

import pytest
import yaml
from conftest import (
    REPO_ROOT,
    SNAKEMAKE_ENV,
    make_dataset,
    run_snakemake,
    save_random_model,
    tiny_config,
)
from slurm_cluster import install_packages, start_cluster, unavailable_reason

pytestmark = [pytest.mark.workflow, pytest.mark.slurm]

PROFILE = REPO_ROOT / "profiles" / "slurm"
COMPARED = ("submission.csv", "submission.valid.json", "score/32x32.json", "score/32x32.txt")
RUN_TIMEOUT = 600
RULES = sorted(
    ["manifest", "infer", "resize", "ground_truth", "submission", "score"]
    + ["report_figures", "report_runtimes"]
)


def profile_requests(profile=PROFILE):
    """The largest cpus_per_task and mem_mb any rule of the profile asks for."""
    settings = yaml.safe_load((profile / "config.yaml").read_text())
    requests = [settings.get("default-resources", {}), *settings.get("set-resources", {}).values()]
    return (
        max(r.get("cpus_per_task", 1) for r in requests),
        max(r.get("mem_mb", 1) for r in requests),
    )


@pytest.fixture(scope="session")
def slurm_cluster(request, tmp_path_factory):
    """A running one-node cluster (partitions cpu and gpu, one fake GPU), stopped at the end.

    The node advertises the largest CPU and memory request of the profile, so that the profile
    runs unchanged on a small CI machine."""
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        pytest.skip("snakemake-executor-plugin-slurm not installed: pip install -e '.[test]'")
    reason = unavailable_reason() or install_packages()
    if reason:
        pytest.skip(f"no local SLURM: {reason}")
    cpus, memory_mb = profile_requests()
    cluster = start_cluster(
        tmp_path_factory.mktemp("slurm"), min_cpus=cpus, min_memory_mb=memory_mb, gpus=1
    )
    request.addfinalizer(cluster.stop)
    return cluster


def slurm_command():
    """snakemake through profiles/slurm, as a user runs it, plus the test cluster's settings:
    it has no accounting, so jobs are polled with squeue, and polled early."""
    return [
        sys.executable, "-m", "snakemake", "--snakefile", str(REPO_ROOT / "Snakefile"),
        "--configfile", "config.yaml", "--profile", str(PROFILE),
        "--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "2",
        "--slurm-keep-successful-logs",
    ]  # fmt: skip


def run_on_slurm(cluster, workdir):
    """Run slurm_command() in `workdir`; fail with the queue and daemon logs if it hangs."""
    try:
        return subprocess.run(
            slurm_command(), cwd=workdir, capture_output=True, text=True, timeout=RUN_TIMEOUT,
            env={**SNAKEMAKE_ENV, **cluster.env},
        )  # fmt: skip
    except subprocess.TimeoutExpired as timeout:
        stderr = timeout.stderr or b""  # bytes even with text=True
        stderr = stderr.decode(errors="replace") if isinstance(stderr, bytes) else stderr
        queue = cluster.run("squeue", "--states=all", check=False).stdout
        pytest.fail(f"no result after {RUN_TIMEOUT} s:\n{stderr}\n{queue}\n{cluster.logs()}")


def submitted_jobs(cluster):
    """{SLURM job id: `scontrol show job` fields} of every job the cluster still remembers."""
    jobs = {}
    for line in cluster.run("scontrol", "show", "job", "--oneliner").stdout.splitlines():
        fields = dict(item.split("=", 1) for item in line.split() if "=" in item)
        if "JobId" in fields:
            jobs[fields["JobId"]] = fields
    return jobs


def jobs_by_rule(cluster, workdir):
    """{rule: [scontrol fields of its SLURM jobs]} of the jobs submitted from `workdir`
    (the plugin puts `rule_<name>_wildcards_...` in each job's comment)."""
    by_rule = {}
    for job in submitted_jobs(cluster).values():
        if job["WorkDir"] == str(workdir):
            rule = job["Comment"].removeprefix("rule_").split("_wildcards")[0]
            by_rule.setdefault(rule, []).append(job)
    return by_rule


def requested(rule, profile=PROFILE):
    """What the profile asks SLURM for on behalf of `rule`."""
    settings = yaml.safe_load((profile / "config.yaml").read_text())
    resources = {**settings["default-resources"], **settings["set-resources"].get(rule, {})}
    return {
        "partition": resources.get("slurm_partition", "cpu"),  # cpu: the test cluster's default
        "gpus": resources.get("gpu", 0),
        "cpus": resources["cpus_per_task"],
        "mem_mb": resources["mem_mb"],
        "minutes": resources["runtime"],
    }


def job_request(job):
    """The same fields, as SLURM recorded them for one job."""
    hours, minutes, _ = (int(part) for part in job["TimeLimit"].split(":"))
    return {
        "partition": job["Partition"],
        "gpus": int(job["TresPerJob"].removeprefix("gres:gpu:")) if "TresPerJob" in job else 0,
        "cpus": int(job["CPUs/Task"]),
        "mem_mb": int(job["MinMemoryNode"].removesuffix("M")),
        "minutes": 60 * hours + minutes,
    }


def test_slurm_run_matches_local_run(slurm_cluster, tmp_path):
    """profiles/slurm as is: every job via sbatch with its rule's request, the same bytes."""
    local, remote = tmp_path / "local", tmp_path / "slurm"
    make_dataset(local / "data", {"train": 1, "val": 12, "test": 1})
    save_random_model(local / "model.pt")
    tiny_config(local)
    shutil.copytree(local, remote)
    run_snakemake(local)

    started = time.monotonic()
    result = run_on_slurm(slurm_cluster, remote)
    elapsed = time.monotonic() - started
    assert result.returncode == 0, (
        f"snakemake on SLURM failed:\n{result.stdout}\n{result.stderr}\n{slurm_cluster.logs()}"
    )
    print(f"SLURM end-to-end run on the tiny config: {elapsed:.1f} s")

    by_rule = jobs_by_rule(slurm_cluster, remote)
    assert sorted(by_rule) == RULES
    assert len(by_rule["infer"]) == len(by_rule["resize"]) == 2
    for rule, jobs in by_rule.items():
        expected = requested(rule)
        for job in jobs:
            assert job["JobState"] == "COMPLETED", job
            assert job_request(job) == expected, rule
    first, second = sorted(by_rule["infer"], key=lambda job: job["StartTime"])
    assert first["EndTime"] <= second["StartTime"], "two infer jobs shared the one GPU"

    for name in COMPARED:
        assert (remote / "results/val" / name).read_bytes() == (
            local / "results/val" / name
        ).read_bytes(), name
