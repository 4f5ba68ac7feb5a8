"""One table on one machine: the seed's pipelines vs this workflow, same model, same images,
same run, ratios against the model's bare forward pass (the floor) or the row named.

Row families (one module each): rows_infer (floors, input pipeline, infer stage per precision
and worker count), rows_stages (resize, submission, re-read check, ground truth, score),
rows_snakemake (whole runs: cold and no-op; the seed B script cold vs the workflow cold),
rows_jobs (the infer job in a fresh process; its peak memory at N and k·N images),
rows_torchvision (a torchvision model; the demo model's mIoU per precision), seeds (seed A and
seed B loops per MIN_SIZE_TEST). Rows that need detectron2 are skipped, with the reason, when it
is absent; `--cpu-smoke` runs the smallest CPU configuration (tests/workflow/test_bench.py).

    PYTHONPATH=$PWD/.deps/detectron2 python bench/gpu_bench.py --images 819 --out bench-out
"""

import argparse
import json
import os
import shutil
from pathlib import Path

import torch
from data import bench_dataset, detectron2_missing, detectron2_model
from rows_infer import PRECISIONS, detectron2_rows
from rows_jobs import job_rows, memory_rows
from rows_snakemake import cold_rows, snakemake_rows
from rows_stages import stage_rows
from rows_torchvision import demo_precision_rows, torchvision_rows
from timing import Table

from segsubmit.testing import DEFAULTS

CPU_SMOKE = {
    "repeats": 1, "batch_size": 4, "workers": 2, "worker_sweep": [], "seed_images": 2,
    "memory_factor": 0, "job_repeats": 0, "cold_repeats": 0, "skip_snakemake": True,
    "precisions": ["fp32"],
    "torchvision_architecture": DEFAULTS["model"]["torchvision"]["architecture"],
    "demo_weights": None, "min_sizes": [128],
}  # fmt: skip


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__)
    add = parser.add_argument
    add("--images", type=int, default=819)
    add("--repeats", type=int, default=3)
    add("--batch-size", type=int, default=32)
    add("--workers", type=int, default=4)
    add("--worker-sweep", type=int, nargs="*", default=[], metavar="N",
        help="also time the fp32 infer stage with N workers")  # fmt: skip
    add("--min-sizes", type=int, nargs="+", default=[512, 800], metavar="S",
        help="INPUT.MIN_SIZE_TEST = MAX_SIZE_TEST of the model; the first is the headline (all "
        "rows), the others get seed rows")  # fmt: skip
    add("--seed-images", type=int, default=819, help="seed loops on the first K images (0: skip)")
    add("--cold-repeats", type=int, default=3,
        help="seed B script vs workflow cold runs, alternating (0: skip)")  # fmt: skip
    add("--memory-factor", type=int, default=10, help="0: skip the memory rows")
    add("--torchvision-architecture", default="deeplabv3_resnet50",
        help="'' skips the torchvision rows")  # fmt: skip
    add("--job-repeats", type=int, default=3,
        help="fresh-process infer jobs per precision (0: skip)")  # fmt: skip
    add("--demo-weights", type=Path, help="the trained demo model (state dict)")
    add("--demo-images", type=int, default=200)
    add("--precisions", nargs="+", default=list(PRECISIONS), choices=list(PRECISIONS),
        help="infer variants (fp32 first); fp16 autocast on a CPU takes minutes an image",
    )  # fmt: skip
    add("--skip-snakemake", action="store_true")
    add("--cpu-smoke", action="store_true", help=f"CPU only, minimal rows: {CPU_SMOKE}")
    add("--out", type=Path, default=Path("bench-out"))
    arguments = parser.parse_args()
    if arguments.cpu_smoke:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # read when CUDA first initialises
        vars(arguments).update(CPU_SMOKE)
    return arguments


def detectron2_families(table, arguments, work, json_path, entries):
    """Every family that needs detectron2 except the seeds; the fp32 labels' path."""
    root = json_path.parent
    model = detectron2_model(work / "models", arguments.min_sizes[0])
    detectron2_rows(table, arguments, work, entries, root, model)
    if not arguments.skip_snakemake:
        snakemake_rows(table, arguments, work, model, root)
    if arguments.cold_repeats:
        cold_rows(table, arguments, work, model, json_path)
    if arguments.job_repeats:
        job_rows(table, arguments, work, model)
    if arguments.memory_factor:
        memory_rows(table, arguments, work, model)
    return work / "labels-fp32.npz"


def main():
    arguments = parse_arguments()
    work = Path(os.environ.get("BENCH_WORK", "/tmp/segsubmit-bench"))
    shutil.rmtree(work, ignore_errors=True)
    json_path, entries = bench_dataset(work, arguments.images)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    print(f"{len(entries)} images on {device}", flush=True)
    torch.set_num_threads(2)  # as the infer stage runs on CUDA (segsubmit.infer.infer_stage)
    table, missing, labels = Table(), detectron2_missing(), None
    if missing:
        table.skip("detectron2 rows (floors, infer, snakemake, jobs, memory, seeds)", missing)
    else:
        labels = detectron2_families(table, arguments, work, json_path, entries)
    if arguments.torchvision_architecture:
        torchvision_rows(table, arguments, work, entries, json_path.parent)
        labels = labels or work / "labels-torchvision.npz"
    if labels:
        stage_rows(table, arguments, work, json_path, labels)
    if arguments.demo_weights:
        demo_precision_rows(table, arguments, work)
    if not missing and arguments.seed_images:
        from seeds import seed_rows  # imports detectron2 (as the seed's script does)

        seed_rows(table, arguments, work, entries, json_path.parent)
    print(f"\n{len(entries)} images, {device}\n{table.text()}")
    arguments.out.mkdir(parents=True, exist_ok=True)
    (arguments.out / "figures.json").write_text(json.dumps(table.figures, indent=1))


if __name__ == "__main__":
    main()
