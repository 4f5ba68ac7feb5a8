"""Whole-run rows: `snakemake` as a user runs it (cold, and a no-op rerun, one shard, with each
job's time from its benchmark file), and the cold comparison against the seed: the seed B script
as a fresh process vs the workflow with its default configuration, alternating, CSVs compared."""

import json
import statistics
import sys
from pathlib import Path

from rows_stages import SIZE
from timing import timed_process

from segsubmit.formats.competition_csv import iter_csv_records
from segsubmit.testing import parse_prediction_string

BENCH = Path(__file__).resolve().parent
REPO_ROOT = BENCH.parent


def snakemake_command(workdir, overrides, cores=4, gpus=1):
    """The CLI on the repository's Snakefile in `workdir`, `overrides` as its --configfile."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "bench.yaml").write_text(json.dumps(overrides))
    return [
        sys.executable, "-m", "snakemake", "--snakefile", str(REPO_ROOT / "Snakefile"),
        "--directory", str(workdir), "--cores", str(cores), "--resources", f"gpu={gpus}",
        "--configfile", str(workdir / "bench.yaml"),
    ]  # fmt: skip


def detectron2_overrides(model, data_root, **data):
    """Config overrides: the bench's images (split val, not scored unless `data` says) and
    Detectron2 `model`; everything else the schema's defaults."""
    config_file, weights = model
    return {
        "data": {"root": str(data_root), "splits": ["val"], "score": [], **data},
        "model": {
            "backend": "detectron2",
            "weights": str(weights),
            "detectron2": {"config_file": str(config_file)},
        },
    }


def job_seconds(workdir):
    """{job: wall seconds} from the run's Snakemake benchmark files."""
    folder = workdir / "results" / "benchmarks"
    return {str(path.relative_to(folder)): float(path.read_text().splitlines()[1].split("\t")[0])
            for path in sorted(folder.rglob("*.tsv"))}  # fmt: skip


def snakemake_rows(table, arguments, work, model, data_root):
    """Import floor, cold run and no-op rerun with one shard and the scored split."""
    workdir = work / "run"
    command = snakemake_command(workdir, detectron2_overrides(
        model, data_root, score=["val"], shards=1))  # fmt: skip
    import_floor, _ = timed_process([sys.executable, "-c", "import torch, detectron2"])
    table.row("import floor: python -c 'import torch, detectron2'", import_floor)
    cold, _ = timed_process(command)
    print("cold run, seconds per job:", json.dumps(job_seconds(workdir)))
    table.row("snakemake --cores 4 --resources gpu=1, cold, 1 shard, scored", cold)
    noop, output = timed_process(command)
    assert "Nothing to be done" in output, output
    table.row("snakemake, no-op rerun", noop, note="target ≤ 2 s")


def csv_agreement(csv_a, csv_b):
    """Fraction of equal pixels of two submission CSVs with the same rows."""
    equal = total = 0
    with open(csv_a, "rb") as file_a, open(csv_b, "rb") as file_b:
        rows = zip(iter_csv_records(iter(file_a)), iter_csv_records(iter(file_b)), strict=True)
        next(rows)  # the headers
        for row_a, row_b in rows:
            assert row_a[0] == row_b[0], f"rows differ: {row_a[0]} vs {row_b[0]}"
            values_a, values_b = (
                parse_prediction_string(row_a[1]),
                parse_prediction_string(row_b[1]),
            )
            equal += int((values_a == values_b).sum())
            total += values_a.size
    return equal / total


def runs(times):
    return ", ".join(f"{seconds:.1f}" for seconds in times)


def cold_rows(table, arguments, work, model, json_path):
    """The seed B script and the workflow (default configuration, detectron2), each a fresh
    cold run, alternating `--cold-repeats` times; medians and the CSVs' pixel agreement."""
    config_file, weights = model
    seed_csv = work / "seed-script.csv"
    script = [sys.executable, str(BENCH / "seed_script.py"), "--config", str(config_file),
              "--weights", str(weights), "--images-json", str(json_path), "--out", str(seed_csv),
              "--size", *map(str, SIZE)]  # fmt: skip
    times = {"seed": [], "workflow": []}
    for repeat in range(arguments.cold_repeats):
        workdir = work / f"cold-{repeat}"
        times["seed"].append(timed_process(script)[0])
        command = snakemake_command(workdir, detectron2_overrides(model, json_path.parent))
        times["workflow"].append(timed_process(command)[0])
        print("cold run, seconds per job:", json.dumps(job_seconds(workdir)))
    name = "seed B script, fresh process, cold (imports, model, loop, pandas CSV)"
    table.row(name, statistics.median(times["seed"]), note=f"runs: {runs(times['seed'])}")
    agreement = csv_agreement(seed_csv, workdir / "results" / "val" / "submission.csv")
    table.row("snakemake, default configuration, detectron2, cold",
              statistics.median(times["workflow"]), name,
              f"runs: {runs(times['workflow'])}; pixels equal to the seed script's CSV: "
              f"{agreement:.5f}")  # fmt: skip
