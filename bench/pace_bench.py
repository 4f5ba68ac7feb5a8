"""Issue 20's rows from one call: the whole run at the GPU's pace.

At N images (default 819, distinct names, copies of 64 synthetic 512² JPEGs): the cold
`snakemake` wall with the default configuration (Detectron2 R50-FPN random init,
`INPUT.MIN_SIZE_TEST` = `MAX_SIZE_TEST` = --min-size, as bench/e2e.py), the infer job's wall
(its benchmark file), the wall minus the infer job, the seed's script cold in the same call and
the ratio, the no-op rerun (median of --noop-repeats). At L images (default 81,900: the N
files hard-linked under new names): the cold wall against the infer job's. Each job's peak
memory at N and L and its growth: the largest job's own peak RSS plus its largest child
process's, from the `peak RSS` line each job logs (getrusage; Snakemake's benchmark `max_rss`
samples, and misses short jobs). Prints the table and writes
`pace.json` under --out.

    PYTHONPATH=$PWD/.deps/detectron2 python bench/pace_bench.py --out bench-out
    python bench/pace_bench.py --cpu-smoke --out bench-out   # tiny, CPU, torchvision model
"""

import argparse
import importlib.util
import json
import os
import pstats
import re
import shutil
import statistics
import sys
from pathlib import Path

from data import detectron2_missing, detectron2_model
from e2e import job_figures
from host_probe import cpu_facts, python_rate
from rows_snakemake import BENCH, detectron2_overrides, snakemake_command
from timing import Table, timed_process

from segsubmit.testing import replicate_dataset, save_random_model

SIZE = ("256", "256")  # the submission size: the default resize.size
SMOKE_ARCHITECTURE = "lraspp_mobilenet_v3_large"
PEAK_LINE = re.compile(r"peak RSS: ([0-9]+) MiB, largest child process ([0-9]+) MiB")


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__)
    add = parser.add_argument
    add("--images", type=int, default=819, help="N: the cold, seed and no-op rows")
    add("--large", type=int, default=81900, help="L: the whole-run vs infer ratio (0: skip)")
    add("--min-size", type=int, default=512)
    add("--cores", type=int, default=4, help="snakemake --cores")
    add("--shards", default=None,
        help="data.shards of every run (default: the schema's auto; --cpu-smoke: 2)")  # fmt: skip
    add("--noop-repeats", type=int, default=3)
    smoke = "tiny CPU run: 64² images, a random torchvision model, 2 shards, N=6, L=12"
    add("--cpu-smoke", action="store_true", help=smoke)
    add("--out", type=Path, default=Path("bench-out"))
    profile = "also cProfile one no-op rerun: noop.prof under --out, its top entries printed"
    add("--profile-noop", action="store_true", help=profile)
    baseline = "also run L with resize.ahead false (the resize jobs after inference): the baseline"
    add("--large-without-ahead", action="store_true", help=baseline)
    arguments = parser.parse_args()
    if arguments.cpu_smoke:
        arguments.images, arguments.large = min(arguments.images, 6), min(arguments.large, 12)
        arguments.noop_repeats = min(arguments.noop_repeats, 1)
    return arguments


def linked_dataset(source_json, root, count):
    """`root/val.json` listing `count` images: hard links to `source_json`'s images under new
    names (no annotations: the split is not scored)."""
    source = json.loads(source_json.read_text())
    images = []
    for index in range(count):
        original = source["images"][index % len(source["images"])]
        file_name = f"batch_{index % 3 + 1:02d}_vt/{index:06d}.jpg"
        (root / file_name).parent.mkdir(parents=True, exist_ok=True)
        os.link(source_json.parent / original["file_name"], root / file_name)
        images.append({**original, "id": index, "file_name": file_name})
    (root / "val.json").write_text(json.dumps({**source, "images": images, "annotations": []}))
    return root / "val.json"


def shard_setting(text):
    """`--shards` as the config value: a number, or `auto`."""
    return text if text == "auto" else int(text)


def model_and_overrides(work, arguments):
    """(seed script arguments or None, function data root -> config overrides): Detectron2 as
    e2e.py runs it, or under --cpu-smoke a random torchvision model at the images' size."""
    if not arguments.cpu_smoke:
        model = detectron2_model(work / "models", arguments.min_size)
        seed = ["--config", str(model[0]), "--weights", str(model[1]),
                "--min-size", str(arguments.min_size)]  # fmt: skip
        shards = {} if arguments.shards is None else {"shards": shard_setting(arguments.shards)}
        return seed, lambda root: detectron2_overrides(model, root, **shards)
    weights = save_random_model(work / "model.pt", architecture=SMOKE_ARCHITECTURE)
    model = {"weights": str(weights), "torchvision": {"architecture": SMOKE_ARCHITECTURE}}
    overrides = {"model": model, "infer": {"batch_size": 4, "workers": 0}}
    return None, lambda root: {
        "data": {
            "root": str(root),
            "splits": ["val"],
            "score": [],
            "shards": shard_setting(arguments.shards or "2"),
        },
        **overrides,
    }


def cold_run(workdir, overrides, cores):
    """(wall seconds, {rule: (summed job seconds, peak RSS MiB)}, command) of a cold run."""
    shutil.rmtree(workdir, ignore_errors=True)
    command = snakemake_command(workdir, overrides, cores)
    wall, _ = timed_process(command)
    jobs = {rule: tuple(figures) for rule, figures in job_figures(workdir).items()
            if not rule.endswith("_longest")}  # fmt: skip
    return wall, jobs, command


def check_disk(folder, count, per_image_bytes):
    """One line when `folder`'s file system cannot hold a run of `count` images."""
    needed, free = count * per_image_bytes, shutil.disk_usage(folder).free
    if needed > free:
        sys.exit(
            f"{folder}: a run of {count} images needs ~{needed / 1e9:.0f} GB, "
            f"{free / 1e9:.0f} GB free; pass a smaller --large or another $BENCH_WORK"
        )


def disk_per_image(workdir):
    """Bytes a finished run wrote per image (labels, resized maps, row fragments, CSV)."""
    results = workdir / "results" / "val"
    total = sum(path.stat().st_size for path in results.rglob("*") if path.is_file())
    rows = len(json.loads((results / "manifest.json").read_text())["images"])
    return total / rows


def keep_logs(workdir, out):
    """The run's job logs (start-up, model-ready and loop timings per job) and Snakemake's own
    log under `out`."""
    for log_file in (workdir / "results").glob("logs/**/*.log"):
        target = out / log_file.relative_to(workdir / "results" / "logs")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(log_file, target)
    for log_file in (workdir / ".snakemake" / "log").glob("*.log"):
        shutil.copyfile(log_file, out / log_file.name)


def logged_peaks(workdir):
    """{rule: (peak RSS MiB of its largest job process, of its largest child process)} from the
    jobs' logs."""
    peaks = {}
    logs = workdir / "results" / "logs"
    for log_file in logs.glob("**/*.log"):
        match = PEAK_LINE.search(log_file.read_text())
        if match:
            rule = log_file.relative_to(logs).parts[0]
            own, child = peaks.get(rule, (0, 0))
            peaks[rule] = (max(own, int(match[1])), max(child, int(match[2])))
    return peaks


def memory_rows(table, small, large, counts):
    """Per rule: the growth of (own + largest child) peak RSS from `counts`[0] to [1] images."""
    for rule in sorted(set(small) & set(large)):
        (own_small, child_small), (own_large, child_large) = small[rule], large[rule]
        note = (f"{own_small} + {child_small} -> {own_large} + {child_large} MiB "
                "(process + largest child; target ≤ 1.5)")  # fmt: skip
        growth = (own_large + child_large) / (own_small + child_small)
        table.row(f"peak RSS growth, {rule}, {counts[0]} -> {counts[1]}", growth, unit="x",
                  note=note)  # fmt: skip


def profile_noop(command, out, entries=25):
    """cProfile one no-op rerun of `command` (a `python -m snakemake` list) into
    `out`/noop.prof; print its `entries` largest cumulative times."""
    profile = out / "noop.prof"
    out.mkdir(parents=True, exist_ok=True)
    seconds, output = timed_process([command[0], "-m", "cProfile", "-o", str(profile),
                                     *command[1:]])  # fmt: skip
    assert "Nothing to be done" in output, output[-3000:]
    print(f"no-op rerun under cProfile: {seconds:.2f} s")
    pstats.Stats(str(profile)).sort_stats("cumulative").print_stats(entries)


def job_rows(table, count, jobs):
    """One row per rule: its jobs' summed wall (infer: one GPU, its shards one after another)
    and Snakemake's sampled peak RSS."""
    for rule, (seconds, peak) in sorted(jobs.items()):
        note = f"benchmark max_rss {peak:.0f} MiB"
        table.row(f"  {count} images: {rule} jobs", seconds, note=note)


def bytecode_note(package="torch"):
    """Whether `package` has bytecode for this Python: without it (PYTHONDONTWRITEBYTECODE and
    an install that did not compile) every process compiles its sources at import, and the
    start-up rows measure that too."""
    folder = Path(importlib.util.find_spec(package).origin).parent / "__pycache__"
    tag = sys.implementation.cache_tag
    if folder.is_dir() and any(folder.glob(f"*.{tag}.pyc")):
        return f"{package} bytecode: present"
    compile_hint = "`python -m compileall -q -j 16 <site-packages>` once, as pip does at install"
    return f"{package} bytecode: absent; each process compiles its sources (run {compile_hint})"


def main():
    arguments = parse_arguments()
    print(bytecode_note())
    host = {**cpu_facts(), **python_rate()}  # start-up rows move with the host's speed
    print("host: " + ", ".join(f"{name} {value}" for name, value in host.items()), flush=True)
    work = Path(os.environ.get("BENCH_WORK", "/tmp/segsubmit-pace"))
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    seed, overrides = model_and_overrides(work, arguments)
    image_size = 64 if arguments.cpu_smoke else 512
    count = arguments.images
    json_path = replicate_dataset(work / "data", count, unique=min(count, 64), size=image_size)
    table = Table()
    shards = arguments.shards or ("2" if arguments.cpu_smoke else "auto")
    print(f"{count} / {arguments.large} images, --cores {arguments.cores}, data.shards {shards}",
          flush=True)  # fmt: skip
    seed_name = f"seed script, fresh process, cold, {count} images"
    if seed is None or detectron2_missing():
        table.skip("seed script", detectron2_missing() or "--cpu-smoke: no detectron2 model")
    else:
        script = [sys.executable, str(BENCH / "seed_script.py"), *seed, "--images-json",
                  str(json_path), "--out", str(work / "seed.csv"), "--size", *SIZE]  # fmt: skip
        table.row(seed_name, timed_process(script)[0])
    cold_name = f"cold run, {count} images"
    wall, jobs, command = cold_run(work / "run", overrides(json_path.parent), arguments.cores)
    table.row(cold_name, wall, seed_name, note="ratio: to the seed script (target ≤ 0.7)")
    job_rows(table, count, jobs)
    keep_logs(work / "run", arguments.out / f"logs-{count}")
    table.row(f"cold run minus the infer jobs, {count} images", wall - jobs["infer"][0],
              note="target ≤ 3 s")  # fmt: skip
    noops = []
    for _ in range(arguments.noop_repeats):
        seconds, output = timed_process(command)
        assert "Nothing to be done" in output, output[-3000:]
        noops.append(seconds)
    table.row("no-op rerun", statistics.median(noops),
              note=f"median of {len(noops)}; target ≤ 1.5 s")  # fmt: skip
    if arguments.profile_noop:
        profile_noop(command, arguments.out)
    memory = {"small": logged_peaks(work / "run")}
    if arguments.large:
        per_image = disk_per_image(work / "run")
        shutil.rmtree(work / "run")
        check_disk(work, arguments.large, per_image * 1.1)
        large_json = linked_dataset(json_path, work / "data-large", arguments.large)
        wall, jobs, _ = cold_run(work / "run-large", overrides(large_json.parent), arguments.cores)
        large = arguments.large
        job_rows(table, large, jobs)
        table.row(f"cold run, {large} images", wall, f"  {large} images: infer jobs",
                  note="ratio: to the infer jobs (target ≤ 1.3)")  # fmt: skip
        memory["large"] = logged_peaks(work / "run-large")
        memory_rows(table, memory["small"], memory["large"], (count, large))
        keep_logs(work / "run-large", arguments.out / f"logs-{large}")
        shutil.rmtree(work / "run-large")
        if arguments.large_without_ahead:
            without = {**overrides(large_json.parent), "resize": {"ahead": False}}
            wall_without, jobs_without, _ = cold_run(work / "run-plain", without, arguments.cores)
            shutil.rmtree(work / "run-plain")
            name = f"cold run, {large} images, resize.ahead false"
            table.row(name, wall_without, note="the same call's baseline")
            job_rows(table, f"{large} (ahead false)", jobs_without)
            table.row(f"cold run, {large} images, resize ahead / without", wall, name)
    print(f"\n{table.text()}")
    arguments.out.mkdir(parents=True, exist_ok=True)
    figures = {"figures": table.figures, "peak_rss_mib": memory, "cores": arguments.cores,
               "shards": shards, "host": host}  # fmt: skip
    (arguments.out / "pace.json").write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
