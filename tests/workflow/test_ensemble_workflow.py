"""ensemble: through the real workflow on tiny data (torchvision, torchscript and smp members,
CPU): a one-member ensemble's CSV is the single model's byte for byte, what reruns after a
weight change or an added member, teammates' CSVs in a vote, and the refusals."""

import json
import re

import numpy as np
import pytest
import torch
from conftest import make_dataset, run_snakemake, save_random_model, tiny_config
from test_reruns import output_mtimes, rewritten, val_file_names

from segsubmit.ensemble import hard_vote
from segsubmit.formats.competition_csv import read_label_maps, write_submission
from segsubmit.labels import maps_in_order
from segsubmit.manifest import Manifest
from segsubmit.probabilities import read_probability_shard
from segsubmit.testing import NUM_CLASSES

pytestmark = pytest.mark.workflow
SHARDS = (0, 1)  # tiny_config's data.shards


def save_torchscript_model(path, seed=0, num_classes=NUM_CLASSES):
    """A tiny scripted conv net (random init) whose maps vary from pixel to pixel."""
    torch.manual_seed(seed)
    module = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, num_classes, 1)
    )
    torch.jit.save(torch.jit.script(module), str(path))
    return path.name


def save_smp_model(path, seed=0):
    from segsubmit.backends.smp_model import build_smp_model

    torch.manual_seed(seed)
    torch.save(build_smp_model("Unet", "resnet18", NUM_CLASSES).state_dict(), path)
    return {"backend": "smp", "weights": path.name, "smp": {"encoder": "resnet18"}}


def scripted(name):
    return {"backend": "torchscript", "weights": name}


def jobs_run(result):
    """{rule: job count} of the run's 'Job stats' tables (the checkpoint's second table too)."""
    counts = {}
    for table in re.findall(r"Job stats:\n(.*?)\ntotal", result.stdout + result.stderr, re.S):
        for rule, count in re.findall(r"^(\w+)\s+(\d+)$", table, re.M):
            counts[rule] = max(counts.get(rule, 0), int(count))
    return counts


def results_of(workdir):
    return workdir / "results" / "val"


def member_maps(workdir, name, kind="resized"):
    """A member's maps of `kind`, in manifest order."""
    manifest = Manifest.load(results_of(workdir) / "manifest.json")
    paths = [results_of(workdir) / "members" / name / kind / f"{k}.npz" for k in SHARDS]
    return list(maps_in_order([entry.id for entry in manifest.images], paths))


def submission_maps(workdir):
    return [m for _, m in read_label_maps(results_of(workdir) / "submission.csv", (32, 32))]


@pytest.fixture
def workdir(tmp_path):
    make_dataset(tmp_path / "data", {"val": 12})
    return tmp_path


@pytest.mark.parametrize("method", ["soft", "vote"])
def test_one_member_ensemble_is_byte_identical_to_the_single_model(workdir, method):
    name = save_torchscript_model(workdir / "model.ts")
    tta = {"flips": ["h"], "scales": [0.5, 1]}
    tiny_config(workdir, model=scripted(name), infer={"batch_size": 4, "workers": 0, "tta": tta})
    run_snakemake(workdir)
    single_csv = (results_of(workdir) / "submission.csv").read_bytes()
    single_labels = list(maps_in_order(
        [e.id for e in Manifest.load(results_of(workdir) / "manifest.json").images],
        [results_of(workdir) / "labels" / f"{k}.npz" for k in SHARDS],
    ))  # fmt: skip
    member = {"name": "solo", "weight": 0.7, "model": scripted(name), "tta": tta}
    tiny_config(workdir, model=scripted(name), ensemble={"method": method, "members": [member]})
    run_snakemake(workdir)
    assert (results_of(workdir) / "submission.csv").read_bytes() == single_csv
    assert len(np.unique(np.stack(single_labels))) > 1  # the maps vary: a real check
    for ours, theirs in zip(member_maps(workdir, "solo", "labels"), single_labels, strict=True):
        assert np.array_equal(ours, theirs)
    score = json.loads((results_of(workdir) / "score" / "32x32.json").read_text())
    member_score = json.loads((results_of(workdir) / "score/members/solo/32x32.json").read_text())
    assert score["miou"] == member_score["miou"]
    assert score["provenance"]["ensemble"]["members"][0]["tta"]["flips"] == ["h"]


def test_reruns_after_a_weight_change_an_added_member_and_another_method(workdir):
    save_random_model(workdir / "model.pt")
    name = save_torchscript_model(workdir / "model.ts")
    members = [
        {"name": "deeplab", "model": {"weights": "model.pt"}},
        {"name": "scripted", "weight": 2, "model": scripted(name)},
    ]
    search = {"enabled": True, "grid": [0.5, 1, 2], "rounds": 1}
    tiny_config(workdir, ensemble={"members": members, "weight_search": search})
    run_snakemake(workdir)
    for path in (
        "score/members/deeplab/32x32.json",
        "score/members/scripted/32x32.json",
        "report/members.html",
        "report/members_iou.png",
        "ensemble/weight_search.json",
    ):
        assert (results_of(workdir) / path).is_file(), path
    searched = json.loads((results_of(workdir) / "ensemble/weight_search.json").read_text())
    assert searched["configured_weights"] == [1.0, 2.0] and searched["applied"] is False
    assert (
        "Weight search (reported, not applied)"
        in (results_of(workdir) / "report/members.html").read_text()
    )
    nothing = run_snakemake(workdir)
    assert "Nothing to be done" in nothing.stdout + nothing.stderr

    before = output_mtimes(workdir)
    members[1]["weight"] = 0.5
    tiny_config(workdir, ensemble={"members": members, "weight_search": search})
    result = run_snakemake(workdir)
    changed = rewritten(before, output_mtimes(workdir))
    assert changed == [
        "val/ensemble/resized/0.npz", "val/ensemble/resized/1.npz",
        "val/ensemble/weight_search.json", "val/score/32x32.json", "val/score/32x32.txt",
        "val/submission.csv", "val/submission.valid.json",
    ]  # fmt: skip
    ran = jobs_run(result)
    after = {"score", "submission", "report_figures", "report_members", "report_runtimes"}
    assert ran.keys() == {"ensemble_combine", "weight_search", "default", *after}

    before = output_mtimes(workdir)
    members.append({"name": "unet", "model": save_smp_model(workdir / "unet.pt")})
    tiny_config(workdir, ensemble={"members": members, "weight_search": search})
    result = run_snakemake(workdir)
    changed = rewritten(before, output_mtimes(workdir))
    assert not [path for path in changed if "/deeplab/" in path or "/scripted/" in path]
    assert {f"val/members/unet/{kind}/{k}.npz" for kind in ("labels", "probabilities", "resized")
            for k in SHARDS} <= set(changed)  # fmt: skip
    assert {"val/ensemble/resized/0.npz", "val/submission.csv", "val/score/32x32.json"} <= set(
        changed
    )
    ran = jobs_run(result)
    assert ran["infer_member"] == len(SHARDS) and ran["resize_member"] == len(SHARDS)
    assert ran["score_member"] == 1 and "manifest" not in ran and "ground_truth" not in ran

    before = output_mtimes(workdir)
    tiny_config(workdir, ensemble={"method": "vote", "members": members})  # the search is soft's
    ran = jobs_run(run_snakemake(workdir))
    changed = rewritten(before, output_mtimes(workdir))
    assert not [path for path in changed if "/members/" in path]
    assert {"val/ensemble/resized/0.npz", "val/submission.csv"} <= set(changed)
    assert not {"infer_member", "resize_member", "score_member"} & ran.keys()


def member_probabilities(workdir, name):
    """A member's (image ids, fp16 probabilities) per shard."""
    folder = results_of(workdir) / "members" / name / "probabilities"
    return [read_probability_shard(folder / f"{k}.npz") for k in SHARDS]


def test_a_shared_infer_job_writes_what_the_per_member_jobs_write(workdir):
    """ensemble.infer_jobs: shared -> one job per shard for both members (one decode), the
    same maps and probabilities as their own jobs, the same CSV; a weight change still reruns
    no member, a member's TTA change reruns the shared jobs."""
    save_random_model(workdir / "model.pt")
    name = save_torchscript_model(workdir / "model.ts")
    members = [
        {"name": "deeplab", "model": {"weights": "model.pt"}, "tta": {"flips": ["h"]}},
        {"name": "scripted", "weight": 2, "model": scripted(name)},
    ]
    tiny_config(workdir, ensemble={"members": members})
    run_snakemake(workdir)
    csv = (results_of(workdir) / "submission.csv").read_bytes()
    names = ("deeplab", "scripted")
    labels = {n: member_maps(workdir, n, "labels") for n in names}
    probabilities = {n: member_probabilities(workdir, n) for n in names}
    tiny_config(workdir, ensemble={"members": members, "infer_jobs": "shared"})
    jobs = jobs_run(run_snakemake(workdir))
    assert jobs.get("infer_members") == len(SHARDS) and "infer_member" not in jobs
    assert (results_of(workdir) / "submission.csv").read_bytes() == csv
    for n in names:
        for ours, theirs in zip(member_maps(workdir, n, "labels"), labels[n], strict=True):
            assert np.array_equal(ours, theirs)
        for (ids, ours), (their_ids, theirs) in zip(
            member_probabilities(workdir, n), probabilities[n], strict=True
        ):
            assert ids == their_ids and np.array_equal(ours, theirs)
    reweighted = [{**members[0], "weight": 3}, members[1]]
    tiny_config(workdir, ensemble={"members": reweighted, "infer_jobs": "shared"})
    assert "infer_members" not in jobs_run(run_snakemake(workdir))
    retuned = [{**reweighted[0], "tta": {"flips": ["h", "v"]}}, members[1]]
    tiny_config(workdir, ensemble={"members": retuned, "infer_jobs": "shared"})
    assert jobs_run(run_snakemake(workdir)).get("infer_members") == len(SHARDS)


def test_vote_with_a_teammate_csv_checked_before_any_member_runs(workdir):
    members = [
        {
            "name": f"m{seed}",
            "model": scripted(save_torchscript_model(workdir / f"{seed}.ts", seed)),
        }
        for seed in (1, 2)
    ]
    names = val_file_names(workdir)
    rng = np.random.default_rng(0)
    write_submission(workdir / "mate.csv", names, list(rng.integers(0, 11, (12, 16, 16), np.uint8)))
    tiny_config(workdir, ensemble={"method": "vote", "members": members, "csvs": ["mate.csv"]})
    failed = run_snakemake(workdir, check=False)
    output = failed.stdout + failed.stderr
    assert failed.returncode != 0
    assert "error: ensemble.csvs[0] mate.csv: line 2 has 256 values, expected 1024" in output
    assert not (results_of(workdir) / "members").exists()  # no member inference ran

    mate = rng.integers(0, 11, (12, 32, 32), np.uint8)
    write_submission(workdir / "mate.csv", names, list(mate))
    run_snakemake(workdir)
    voters = np.stack([np.stack(member_maps(workdir, m["name"])) for m in members] + [mate])
    assert np.array_equal(np.stack(submission_maps(workdir)), hard_vote(voters, NUM_CLASSES))

    before = output_mtimes(workdir)
    write_submission(workdir / "mate.csv", names, list(mate[::-1]))  # a teammate's new CSV
    run_snakemake(workdir)
    changed = rewritten(before, output_mtimes(workdir))
    assert "val/submission.csv" in changed and not [p for p in changed if "/members/" in p]


def test_a_member_of_another_class_count_is_refused_at_load(workdir):
    members = [
        {"name": "ok", "model": scripted(save_torchscript_model(workdir / "ok.ts"))},
        {"name": "five", "model": scripted(save_torchscript_model(workdir / "5.ts", 0, 5))},
    ]
    tiny_config(workdir, ensemble={"members": members})
    failed = run_snakemake(workdir, check=False)
    assert failed.returncode != 0
    logs = list((workdir / "results/logs/infer_member/val/five").glob("*.log"))
    assert logs  # the shards that started before snakemake stopped
    for log in (path.read_text() for path in logs):
        errors = [line for line in log.splitlines() if " ERROR " in line]
        assert len(errors) == 1
        assert "5.ts: model predicts 5 classes but config `classes` lists 11" in errors[0]
        assert "first batch back" not in log  # refused before any image was predicted
