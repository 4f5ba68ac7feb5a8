"""Several GPUs of one host: the same cold run (Detectron2 R50-FPN, `data.shards` = the GPU
count, default configuration otherwise) with `--resources gpu=1` and `gpu=N`; the inference
stage's images/s (gpu=1: its jobs one after another, the sum of their times; gpu=N: at once,
the longest), the whole run's, each infer job's claimed GPU, and whether the CSVs are equal.

    PYTHONPATH=$PWD/.deps/detectron2 python bench/two_gpus.py --images 8190 --gpus 2
"""

import argparse
import os
import re
import shutil
from pathlib import Path

from data import detectron2_model
from e2e import cold_run
from rows_snakemake import csv_agreement
from timing import Table

from segsubmit.testing import replicate_dataset


def claimed_gpus(workdir):
    """The GPU each infer job's log says it claimed ('none' without a claim: on a CPU)."""
    logs = sorted((workdir / "results" / "logs" / "infer").rglob("*.log"))
    claims = [re.search(r"GPU (\S+) claimed", log.read_text()) for log in logs]
    return [claim.group(1) if claim else "none" for claim in claims]


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=8190)
    parser.add_argument("--gpus", type=int, default=2)
    parser.add_argument("--min-size", type=int, default=512)
    parser.add_argument("--cores", type=int, default=16)
    arguments = parser.parse_args()
    work = Path(os.environ.get("BENCH_WORK", "/tmp/segsubmit-gpus"))
    shutil.rmtree(work, ignore_errors=True)
    model = detectron2_model(work / "models", arguments.min_size)
    json_path = replicate_dataset(work / "data", arguments.images, unique=64)
    table, count = Table(), arguments.images
    runs = {}
    for gpus in (1, arguments.gpus):
        wall, jobs, _ = cold_run(work, f"gpu{gpus}", model, json_path.parent, arguments.cores,
                                 gpus, shards=arguments.gpus)  # fmt: skip
        infer_seconds = jobs["infer"][0] if gpus == 1 else jobs["infer_longest"]
        runs[gpus] = (wall, infer_seconds)
        note = f"{infer_seconds:.2f} s; GPUs the infer jobs claimed: "
        note += ", ".join(claimed_gpus(work / f"gpu{gpus}"))
        table.row(f"gpu={gpus}: inference stage, images/s", count / infer_seconds, unit="img/s",
                  note=note)  # fmt: skip
        table.row(f"gpu={gpus}: whole run, images/s", count / wall, unit="img/s",
                  note=f"{wall:.2f} s")  # fmt: skip
    (wall_1, infer_1), (wall_n, infer_n) = runs[1], runs[arguments.gpus]
    equal = csv_agreement(*(work / f"gpu{g}" / "results" / "val" / "submission.csv"
                            for g in (1, arguments.gpus)))  # fmt: skip
    table.row(f"speed-up gpu={arguments.gpus} / gpu=1, inference stage", infer_1 / infer_n,
              unit="x", note="target ≥ 1.9")  # fmt: skip
    table.row(f"speed-up gpu={arguments.gpus} / gpu=1, whole run", wall_1 / wall_n, unit="x",
              note=f"target ≥ 1.7; CSV pixels equal: {equal:.6f}")  # fmt: skip
    print(f"\n{table.text()}")


if __name__ == "__main__":
    main()
