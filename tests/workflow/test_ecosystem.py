"""The workflow as a Snakemake citizen: used as a module from another folder, documented
`--config` examples, an honest dry run, threads and resources on every rule, provenance in the
results, the end-of-run summary, tracebacks in rule logs, one detectron2 install command, the
workflow catalog's files."""

import json
import logging
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import REPO_ROOT, SNAKEMAKE_ENV, run_snakemake

from segsubmit.backends.detectron2_backend import DETECTRON2_REQUIREMENT, INSTALL_COMMAND
from segsubmit.codehash import rule_scripts
from segsubmit.config import SCHEMA_PATH, coerce_config
from segsubmit.formats.competition_csv import validate_submission
from segsubmit.layout import Layout
from segsubmit.logs import LOG_FORMAT, format_rate, run_stage
from segsubmit.provenance import file_sha256, package_version, provenance_record
from segsubmit.summary import checkpoint_note, run_summary, split_outputs, summary_of_config

IMPORTING_SNAKEFILE = """\
import time

from segsubmit.summary import write_run_summary

STARTED = time.time()


configfile: "config.yaml"


module segsubmit:
    snakefile:
        "{snakefile}"
    config:
        config


use rule * from segsubmit as segsubmit_*


onsuccess:
    write_run_summary(config, STARTED)
"""


def snakemake_in(workdir, *arguments):
    """The real snakemake CLI on the Snakefile in `workdir` (no --snakefile)."""
    command = [sys.executable, "-m", "snakemake", "--cores", "2", "--resources", "gpu=1"]
    env = {**SNAKEMAKE_ENV, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT / "src")])}
    return subprocess.run(
        [*command, *arguments], cwd=workdir, capture_output=True, text=True, env=env
    )


@pytest.mark.workflow
def test_used_as_a_module_from_another_folder(user_workdir):
    """A separate folder imports the workflow with `module` + `use rule * ... as segsubmit_*`
    and runs it for real: outputs, provenance, summary, threads, honest dry run."""
    (user_workdir / "Snakefile").write_text(
        IMPORTING_SNAKEFILE.format(snakefile=REPO_ROOT / "Snakefile")
    )
    dry = snakemake_in(user_workdir, "-n")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert (
        "dry run: val: inference jobs appear once the manifest checkpoint has run; "
        "12 images in data/val.json -> ~2 infer jobs"
    ) in dry.stdout
    assert "segsubmit_manifest" in dry.stdout

    run = snakemake_in(user_workdir)
    assert run.returncode == 0, run.stdout + run.stderr
    results = user_workdir / "results" / "val"
    names = [e["file_name"] for e in json.loads((results / "manifest.json").read_text())["images"]]
    assert validate_submission(results / "submission.csv", names, 11, 32 * 32) == 12

    report = json.loads((results / "submission.valid.json").read_text())
    score = json.loads((results / "score" / "32x32.json").read_text())
    weights_sha = file_sha256(user_workdir / "model.pt")
    for provenance in (report["provenance"], score["provenance"]):
        assert provenance["model"]["backend"] == "torchvision"
        assert provenance["model"]["architecture"] == "lraspp_mobilenet_v3_large"
        assert provenance["model"]["precision"] == "fp32"
        assert provenance["files_sha256"] == {"weights": weights_sha}
        assert provenance["resize"] == {
            "backend": "albumentations",
            "interpolation": "nearest",
            "size": [32, 32],
        }
        assert {"torch", "torchvision", "albumentations", "snakemake"} <= provenance[
            "packages"
        ].keys()
        assert all(re.fullmatch(r"[0-9a-f]{16}", d) for d in provenance["code"].values())
    assert set(score["provenance"]["code"]) == {
        "manifest",
        "infer",
        "resize",
        "ground_truth",
        "score",
    }
    assert score["provenance"]["size"] == "32x32"

    summary = (user_workdir / "results" / "logs" / "summary.txt").read_text()
    assert f"val: {Path('results/val/submission.csv')} (12 rows, checked)" in summary
    assert f"mIoU {score['miou']:.4f} at 32x32" in summary
    assert "infer 2 ran" in summary
    # the random model paints every map one class: submission.valid.json's warning is summarised
    assert "maps is a single class" in summary
    assert summary in run.stderr
    infer_log = (user_workdir / "results" / "logs" / "infer" / "val" / "0.log").read_text()
    assert "threads: 2" in infer_log  # config threads 8, lowered by Snakemake to --cores 2
    assert re.search(r"images in [\d.]+ s \([\d.]+ images/s", infer_log)

    again = snakemake_in(user_workdir, "-n")
    assert "dry run:" not in again.stdout  # the manifest exists: Snakemake lists the jobs


def readme_config_examples():
    """The `snakemake ... --config ...` commands of config/README.md, as argument lists."""
    text = (REPO_ROOT / "config" / "README.md").read_text()
    commands = re.findall(r"^snakemake .*--config .*$", text, re.MULTILINE)
    return [shlex.split(command)[1:] for command in commands]


def test_readme_has_config_examples():
    assert len(readme_config_examples()) >= 3


@pytest.mark.workflow
def test_documented_config_examples_work_in_a_dry_run(user_workdir):
    """Each documented `--config` example, run with the real `snakemake -n` on the tiny
    config; an example changing resize.size shows that size's score job."""
    for arguments in readme_config_examples():
        extra = [a for a in arguments if a not in {"--cores", "4", "--resources", "gpu=1"}]
        result = run_snakemake(user_workdir, "-n", *extra, check=False)
        output = result.stdout + result.stderr
        assert result.returncode == 0 and "Traceback" not in output, (arguments, output)
        if any("size: [128, 128]" in argument for argument in arguments):
            assert "score/128x128.json" in output


def test_dotted_config_keys_are_refused_by_snakemake_itself(user_workdir):
    """Why the docs use `resize={backend: kornia}`: Snakemake refuses dotted --config keys."""
    result = run_snakemake(user_workdir, "-n", "--config", "resize.backend=kornia", check=False)
    assert result.returncode != 0
    assert "Config entry must start with a valid identifier" in result.stdout + result.stderr


def test_config_strings_from_the_command_line_get_the_schema_types():
    config = {
        "threads": 4,
        "data": {"shards": "2", "splits": ["1"], "category_map": {"2": "3"}},
        "infer": {"batch_size": "16", "channels_last": "true"},
        "resize": {"size": ["128", "64"], "backend": "kornia"},
    }
    coerce_config(config)
    assert config["data"] == {"shards": 2, "splits": ["1"], "category_map": {"2": "3"}}
    assert config["infer"] == {"batch_size": 16, "channels_last": True}
    assert config["resize"] == {"size": [128, 64], "backend": "kornia"}
    auto = coerce_config({"infer": {"batch_size": "auto"}})
    assert auto["infer"]["batch_size"] == "auto"


def test_dry_run_note_counts_images_and_shards(tmp_path):
    json_path = tmp_path / "val.json"
    images = [{"id": i, "file_name": f"a/{i}.jpg"} for i in range(40)]
    json_path.write_text(json.dumps({"images": images}))
    note = checkpoint_note("val", json_path, 4)
    assert note == (
        "dry run: val: inference jobs appear once the manifest checkpoint has run; "
        f"40 images in {json_path} -> ~4 infer jobs (and as many resize jobs)"
    )
    missing = checkpoint_note("test", tmp_path / "absent.json", 4)
    assert missing.endswith("absent.json is not there yet (generated by the run)")


RULE_BLOCK = re.compile(
    r"^([ \t]*)(?:rule|checkpoint) (\w+):\n((?:\1[ \t]+.*\n|\n)+)", re.MULTILINE
)  # a rule's body: the lines indented deeper than its header (rules inside `if` too)


def rule_blocks():
    """(rule name, its text) of every rule in workflow/rules/*.smk (a name defined in both
    branches of an `if` appears twice)."""
    return [
        (name, body)
        for path in (REPO_ROOT / "workflow" / "rules").glob("*.smk")
        for _, name, body in RULE_BLOCK.findall(path.read_text())
    ]


def test_every_computing_rule_declares_threads_and_resources():
    blocks = rule_blocks()
    scripts = rule_scripts(REPO_ROOT / "workflow" / "rules")
    names = [name for name, _ in blocks]
    assert {"manifest", "resize", "submission", "ground_truth", "score"} <= set(names)
    assert names.count("infer") == 2  # with and without `--cache`
    for rule, text in blocks:
        if "script:" not in text:
            continue
        assert re.search(r"^\s+threads: ", text, re.MULTILINE), rule
        assert ("mem_mb=" in text and "runtime=" in text) or "**INFER_RESOURCES" in text, rule
        assert "threads=snakemake.threads" in scripts[rule].read_text(), rule
    for rule, text in blocks:
        if rule in ("infer", "submission", "score", "ground_truth"):
            assert "threads: THREADS" in text, rule


def test_run_stage_writes_an_unexpected_traceback_to_the_rule_log(tmp_path):
    def broken_stage():
        raise ValueError("something the code did not expect")

    log_path = tmp_path / "job.log"
    with pytest.raises(SystemExit) as exit_info:
        run_stage(str(log_path), broken_stage)
    assert exit_info.value.code == 1
    text = log_path.read_text()
    assert "ERROR segsubmit.broken_stage: unexpected error in broken_stage" in text
    assert "Traceback (most recent call last)" in text
    assert "ValueError: something the code did not expect" in text


def test_run_stage_passes_threads_to_a_stage_that_takes_them(tmp_path):
    def stage(threads=None):
        return threads

    assert run_stage(str(tmp_path / "job.log"), stage, threads=3) == 3
    assert "threads: 3" in (tmp_path / "job.log").read_text()


RUN_JOB_SCRIPT = """\
import atexit, pathlib, sys, threading, time
from segsubmit.errors import SegsubmitError
from segsubmit.logs import run_job

folder = pathlib.Path(sys.argv[1])

def stage(fail):
    if fail:
        raise SegsubmitError("the input is wrong")
    def late_writer():
        time.sleep(0.3)
        (folder / "thread.txt").write_text("written")
    threading.Thread(target=late_writer).start()
    atexit.register(lambda: (folder / "atexit.txt").write_text("ran"))
    print("unflushed", end="")

run_job(str(folder / "job.log"), stage, fail=sys.argv[2] == "fail")
raise AssertionError("run_job returned")
"""


@pytest.mark.parametrize("outcome", ["succeed", "fail"])
def test_run_job_exits_after_threads_exit_handlers_and_output(tmp_path, outcome):
    script = tmp_path / "job.py"
    script.write_text(RUN_JOB_SCRIPT)
    result = subprocess.run([sys.executable, str(script), str(tmp_path), outcome],
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    log_text = (tmp_path / "job.log").read_text()
    if outcome == "fail":
        assert result.returncode == 1 and "error: the input is wrong" in log_text
        return
    assert result.returncode == 0, result.stderr
    assert result.stdout == "unflushed" and "done in" in log_text
    assert (tmp_path / "thread.txt").read_text() == "written"
    assert (tmp_path / "atexit.txt").read_text() == "ran"


def test_run_stage_logs_the_peak_memory_of_the_job_and_its_children(tmp_path):
    def stage():
        held = b"x" * (300 * 2**20)  # written, so resident
        subprocess.run([sys.executable, "-c", "b = b'x' * (200 * 2**20)"], check=True)
        return len(held)

    run_stage(str(tmp_path / "job.log"), stage)
    line = next(x for x in (tmp_path / "job.log").read_text().splitlines() if "peak RSS" in x)
    own, child = (float(n) for n in re.findall(r"([0-9]+) MiB", line))
    assert own >= 300 and child >= 200, line


@pytest.mark.parametrize(
    ("count", "seconds", "shown"),
    [(819, 1.22, "671"), (12, 9.6, "1.25"), (1, 24, "0.0417"), (3, 1, "3"), (0, 5, "0")],
)
def test_format_rate_never_rounds_a_slow_run_to_zero(count, seconds, shown):
    assert format_rate(count, seconds) == shown


def test_provenance_record_is_the_settings_plus_digests_and_versions():
    settings = {"model": {"backend": "detectron2", "opts": []}, "code": {"infer": "ab"}}
    record = provenance_record(settings, {"weights": "w", "model_config": "c"}, {"torch": "2"})
    assert record == {
        **settings,
        "files_sha256": {"model_config": "c", "weights": "w"},
        "packages": {"segsubmit": "0.1.0", "torch": "2"},
    }


def test_package_version_of_absent_and_present_packages():
    assert package_version("no-such-package-segsubmit") is None
    assert package_version("numpy") == __import__("numpy").__version__


def write_log(path, level, message):
    """A log line exactly as segsubmit.logs.LOG_FORMAT writes it."""
    record = logging.LogRecord("segsubmit.infer", level, __file__, 1, message, None, None)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(logging.Formatter(LOG_FORMAT).format(record) + "\n")


def test_summary_says_what_ran_what_was_reused_and_the_warnings(tmp_path):
    results = tmp_path / "results"
    started = time.time() - 50  # the run started before every file below was written
    outputs = split_outputs(Layout(str(results)), "val", range(2), ["32x32"], ["competition_csv"])
    for paths in outputs.values():
        for path in map(Path, paths):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("x")
    old = started - 100
    for path in [*outputs["manifest"], outputs["infer"][0], outputs["resize"][0]]:
        os.utime(path, (old, old))
    (results / "val" / "submission.valid.json").write_text(
        json.dumps({"rows": 5, "valid": True, "warnings": ["all images predicted as background"]})
    )
    (results / "val" / "score" / "32x32.json").write_text(
        json.dumps({"miou": 0.5, "per_image_mean_miou": 0.25})
    )
    write_log(
        results / "logs" / "infer" / "val" / "1.log",
        logging.WARNING,
        "on_bad_image=blank: all-background masks for 1 unreadable images: a.jpg",
    )
    text = run_summary(results, ["val", "test"], ["val"], ["32x32"], range(2), started)
    lines = text.splitlines()
    assert lines[0] == "segsubmit: run finished"
    assert lines[1] == f"val: {results / 'val' / 'submission.csv'} (5 rows, checked)"
    assert lines[2].startswith("  mIoU 0.5000 at 32x32 (per-image mean 0.2500")
    assert lines[3] == (
        "  manifest 1 reused; infer 1 ran, 1 reused; resize 1 ran, 1 reused; submission 1 ran; "
        "ground_truth 1 ran; score 1 ran"
    )
    assert lines[4] == f"test: {results / 'test' / 'submission.csv'} (not written)"
    assert "warnings: 2" in lines
    assert any("unreadable images: a.jpg" in line for line in lines)
    assert any("all images predicted as background" in line for line in lines)
    failed = run_summary(results, ["val"], [], [], range(2), started, failed=True)
    assert failed.startswith("segsubmit: run FAILED")


def test_detectron2_install_command_is_the_same_everywhere():
    assert f"pip install --no-build-isolation '{DETECTRON2_REQUIREMENT}'" == INSTALL_COMMAND
    for doc in ("README.md", "docs/detectron2.md", "envs/detectron2.post-deploy.sh"):
        assert INSTALL_COMMAND in (REPO_ROOT / doc).read_text(), doc
    assert "[detectron2]" not in (REPO_ROOT / "README.md").read_text()
    extras = (REPO_ROOT / "pyproject.toml").read_text().split("[project.optional-dependencies]")
    assert "\ndetectron2 = [" not in extras[1]  # an extra cannot build it (build isolation)
    assert "detectron2 @" not in (REPO_ROOT / "envs" / "detectron2.yaml").read_text()
    blocked = (
        "import sys; sys.modules['detectron2'] = None\n"
        "from segsubmit.backends.detectron2_model import require_detectron2\n"
        "require_detectron2()"
    )
    result = subprocess.run([sys.executable, "-c", blocked], capture_output=True, text=True)
    assert f"run `{INSTALL_COMMAND}`" in result.stderr


def test_post_deploy_script_is_valid_bash():
    script = REPO_ROOT / "envs" / "detectron2.post-deploy.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    assert os.access(script, os.X_OK)


def test_workflow_catalog_files():
    catalog = yaml.safe_load((REPO_ROOT / ".snakemake-workflow-catalog.yml").read_text())
    assert catalog["usage"]["software-stack-deployment"]["conda"] is True
    schema_link = REPO_ROOT / "workflow" / "schemas" / "config.schema.yaml"
    assert schema_link.is_symlink() and schema_link.resolve() == SCHEMA_PATH.resolve()
    assert (REPO_ROOT / "LICENSE").read_text().startswith("MIT License")
    assert 'include: "workflow/Snakefile"' in (REPO_ROOT / "Snakefile").read_text()


def test_catalog_entry_point_lints_clean():
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--lint", "--snakefile", "workflow/Snakefile"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    )
    assert "Congratulations" in result.stdout + result.stderr, result.stdout + result.stderr


@pytest.mark.workflow
def test_failed_run_ends_with_a_failed_summary(user_workdir):
    (user_workdir / "model.pt").write_bytes(b"not a checkpoint")
    result = run_snakemake(user_workdir, check=False)
    assert result.returncode != 0
    summary = (user_workdir / "results" / "logs" / "summary.txt").read_text()
    assert summary.startswith("segsubmit: run FAILED")
    assert "manifest 1 ran" in summary and "infer 2 missing" in summary
    assert summary in result.stderr


def test_summary_of_the_default_config_counts_auto_shards(tmp_path):
    """`data.shards: auto` (the default) is resolved as the workflow resolves it."""
    text = summary_of_config({"results": str(tmp_path / "results")}, time.time())
    assert "val" in text and "test" in text
