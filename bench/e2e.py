"""End to end, as a user runs it: the whole `snakemake` run with the default configuration
(Detectron2 R50-FPN, random init, `INPUT.MIN_SIZE_TEST` = `MAX_SIZE_TEST` = --min-size) at N and
k·N distinct images (CSV and re-read check included), each job's wall time and peak memory from
its Snakemake benchmark file, the marginal cost per image against the model's own per-image time
(the floor, measured in the same run), the no-op rerun, and cold runs per `data.shards` setting.

    PYTHONPATH=$PWD/.deps/detectron2 python bench/e2e.py --images 819 8190 --out bench-out
"""

import argparse
import json
import os
import shutil
import statistics
from collections import defaultdict
from pathlib import Path

from data import detectron2_model
from rows_infer import loaded, model_floor
from rows_snakemake import detectron2_overrides, snakemake_command
from timing import Table, seconds, timed_process

from segsubmit.testing import replicate_dataset

FLOOR = "model floor fp32 bs 32, per image"


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__)
    add = parser.add_argument
    add("--images", type=int, nargs="+", default=[819, 8190], help="N, then larger runs")
    add("--min-size", type=int, default=512)
    add("--shards", nargs="*", default=["1", "2", "4"], help="cold runs at N per setting")
    add("--noop-repeats", type=int, default=3)
    add("--out", type=Path, default=Path("bench-out"))
    return parser.parse_args()


def job_figures(workdir):
    """{rule: (summed wall seconds, max peak RSS MiB)} from the run's benchmark files."""
    figures = defaultdict(lambda: [0.0, 0.0])
    for path in (workdir / "results" / "benchmarks").rglob("*.tsv"):
        header, values = (line.split("\t") for line in path.read_text().splitlines()[:2])
        row = dict(zip(header, values, strict=True))
        rule = path.relative_to(workdir / "results" / "benchmarks").parts[0]
        figures[rule][0] += float(row["s"])
        figures[rule][1] = max(figures[rule][1], float(row["max_rss"]))
        figures[f"{rule}_longest"] = max(figures.get(f"{rule}_longest", 0.0), float(row["s"]))
    return dict(figures)


def cold_run(work, name, model, data_root, cores=4, gpus=1, **data):
    """(wall seconds, job figures) of a cold run in a fresh `work`/`name` folder."""
    workdir = work / name
    shutil.rmtree(workdir, ignore_errors=True)
    overrides = detectron2_overrides(model, data_root, **data)
    command = snakemake_command(workdir, overrides, cores, gpus)
    wall, _ = timed_process(command)
    return wall, job_figures(workdir), command


def floor_per_image(model, json_path, repeats=3):
    """The model's forward pass alone, fp32 batch 32, per image (preloaded on the device)."""
    config_file, weights = model
    images = json.loads(json_path.read_text())["images"][:256]
    paths = [json_path.parent / image["file_name"] for image in images]
    forward = model_floor(*loaded("detectron2", weights, config_file=str(config_file)), paths, 32)
    return seconds(forward, repeats) / len(paths)


def main():
    arguments = parse_arguments()
    work = Path(os.environ.get("BENCH_WORK", "/tmp/segsubmit-e2e"))
    shutil.rmtree(work, ignore_errors=True)
    model = detectron2_model(work / "models", arguments.min_size)
    table = Table()
    walls = {}
    for count in arguments.images:
        json_path = replicate_dataset(work / f"data-{count}", count, unique=min(count, 64))
        if count == arguments.images[0]:
            table.row(FLOOR, floor_per_image(model, json_path) * 1000, unit="ms")
        wall, jobs, command = cold_run(work, f"run-{count}", model, json_path.parent)
        walls[count] = wall
        table.row(f"cold run, default configuration, {count} images", wall)
        for rule, (job_seconds, peak_mib) in sorted(
            (rule, figures) for rule, figures in jobs.items() if not rule.endswith("_longest")
        ):
            table.row(f"  {count} images: {rule} jobs", job_seconds,
                      note=f"peak RSS {peak_mib:.0f} MiB")  # fmt: skip
        if count == arguments.images[0]:
            noops = [timed_process(command)[0] for _ in range(arguments.noop_repeats)]
            table.row("no-op rerun", statistics.median(noops), note="target ≤ 2 s")
            for shards in arguments.shards:
                wall, _, _ = cold_run(work, f"shards-{shards}", model, json_path.parent,
                                      shards=int(shards))  # fmt: skip
                table.row(f"cold run, data.shards: {shards}, {count} images", wall,
                          f"cold run, default configuration, {count} images")  # fmt: skip
        for folder in (work / f"run-{count}", json_path.parent):  # disk: 81,900 images ~40 GB
            shutil.rmtree(folder)
    first, *larger = arguments.images
    for count in larger:
        marginal = (walls[count] - walls[first]) / (count - first) * 1000
        ratio = marginal / table.figures[FLOOR]
        table.row(f"marginal cost per image, {first} -> {count}", marginal, unit="ms",
                  note=f"{ratio:.2f}x the floor (target ≤ 1.5x)")  # fmt: skip
    print(f"\n{table.text()}")
    arguments.out.mkdir(parents=True, exist_ok=True)
    (arguments.out / "e2e.json").write_text(json.dumps(table.figures, indent=1))


if __name__ == "__main__":
    main()
