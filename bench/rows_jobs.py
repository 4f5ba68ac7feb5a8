"""Job rows: the infer stage as its rule runs it, in a fresh process (imports, workers, model
load, inference, label file), per precision; and its peak host memory at N and k·N images."""

import re
import statistics
import sys
from dataclasses import asdict

from data import bench_dataset
from rows_infer import FLOOR, PRECISIONS
from timing import timed_process

from segsubmit.settings import InferSettings
from segsubmit.testing import NUM_CLASSES, model_settings


def infer_job(model, shard_path, labels_path, arguments, **options):
    """(peak RSS MiB, wall seconds, seconds of the inference loop as the stage logs it) of a
    fresh process running `segsubmit.infer.infer_stage`."""
    config_file, weights = model
    options = {"options": {"config_file": str(config_file), "opts": []}, **options}
    settings = model_settings("detectron2", weights, NUM_CLASSES, **options)
    infer = InferSettings(batch_size=arguments.batch_size, workers=arguments.workers)
    program = (
        "import resource\n"
        "from segsubmit.logs import configure_logging\n"
        "from segsubmit.infer import infer_stage\n"
        "from segsubmit.settings import InferSettings, ModelSettings, from_params\n"
        "configure_logging()\n"
        f"infer_stage({str(shard_path)!r}, {str(labels_path)!r}, "
        f"from_params(ModelSettings, {asdict(settings)!r}), InferSettings(**{asdict(infer)!r}))\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)\n"
    )
    wall, output = timed_process([sys.executable, "-c", program])
    loop = re.search(r"infer: \d+ images in ([\d.]+) s", output)
    rss = re.findall(r"^([\d.]+)$", output, re.MULTILINE)
    return float(rss[-1]), wall, float(loop.group(1))


def job_rows(table, arguments, work, model):
    """The infer job's inference loop per precision against the floor; median of
    `--job-repeats` fresh processes."""
    for name in arguments.precisions:
        runs = [infer_job(model, work / "shard.json", work / "job.npz", arguments,
                          **PRECISIONS[name]) for _ in range(arguments.job_repeats)]  # fmt: skip
        wall = statistics.median(run[1] for run in runs)
        table.row(f"infer job {name}: inference loop", statistics.median(run[2] for run in runs),
                  FLOOR, f"fresh process, {arguments.workers} workers; whole process "
                  f"{wall:.1f} s (imports, CUDA, model load)")  # fmt: skip


def memory_rows(table, arguments, work, model):
    """Peak RSS of the infer job at `--images` and `--memory-factor` times as many."""
    big = work / "big"
    _, big_entries = bench_dataset(big, arguments.images * arguments.memory_factor)
    for count, shard in ((arguments.images, work / "shard.json"),
                         (len(big_entries), big / "shard.json")):  # fmt: skip
        rss, wall, _ = infer_job(model, shard, work / "rss.npz", arguments)
        table.row(f"peak host RSS, infer job, {count} images", rss, unit="MiB",
                  note=f"fresh process: {wall:.1f} s with imports and model load")  # fmt: skip
