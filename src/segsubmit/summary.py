"""What the user reads at the end of a run (the Snakefile's onsuccess/onerror) and in a dry run
before the manifest checkpoint has run: where the CSVs are, the scores, which outputs this run
wrote and which it reused, and the warnings the jobs logged."""

import os
import sys
import threading
from pathlib import Path

from .atomic import atomic_path
from .coco import read_json_or_none
from .config import default_config, shard_count, visible_gpu_count
from .layout import JOB_PATTERNS, JOB_PATTERNS_WILDCARDS, Layout
from .manifest import shard_of
from .plugins import format_named

WARNING_MARK = " WARNING "  # as segsubmit.logs.LOG_FORMAT writes a warning line


def split_outputs(layout, split, shards, score_sizes, formats, members=()):
    """{stage: [output paths]} of one split (scored when `score_sizes`); with ensemble
    `members` (names), theirs and the combined maps in place of the single model's."""
    outputs = {
        "manifest": [layout.manifest(split)],
        "infer": [layout.labels(split, shard) for shard in shards],
        "resize": [layout.resized(split, shard) for shard in shards],
        "submission": [layout.submission(split, format_named(f).file_name) for f in formats],
    }
    if members:
        for stage, kind in (("infer", "labels"), ("resize", "resized")):
            outputs[stage] = [layout.member(split, m, kind, k) for m in members for k in shards]
        outputs["ensemble"] = [layout.ensemble_resized(split, shard) for shard in shards]
    if score_sizes:
        outputs["ground_truth"] = [layout.ground_truth(split, size) for size in score_sizes]
        outputs["score"] = [layout.score(split, size) for size in score_sizes]
    return outputs


def ran_and_reused(paths, started):
    """(written at or after `started`, older, missing) counts of `paths`."""
    ran = reused = missing = 0
    for path in paths:
        try:
            modified = os.stat(path).st_mtime
        except OSError:
            missing += 1
            continue
        if modified >= started:
            ran += 1
        else:
            reused += 1
    return ran, reused, missing


def logged_warnings(log_paths):
    """'log: message' of every warning line in the given logs (absent logs skipped)."""
    found = []
    for path in log_paths:
        try:
            lines = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            continue
        found += [
            f"{path}: {line.split(WARNING_MARK, 1)[1]}" for line in lines if WARNING_MARK in line
        ]
    return found


def split_logs(layout, split, shards, score_sizes):
    """The logs of a split's jobs."""
    jobs = [{"split": split}] + [{"split": split, "shard": shard} for shard in shards]
    jobs += [{"split": split, "size": size} for size in score_sizes]
    return [
        layout.log(rule, pattern.format(**job))
        for rule, pattern in JOB_PATTERNS.items()
        for job in jobs
        if job.keys() == set(JOB_PATTERNS_WILDCARDS[rule])
    ]


def split_summary(layout, split, shards, score_sizes, started, formats, members=()):
    """Lines about one split: the files, scores, ran/reused per stage; and its warnings."""
    report_path = layout.submission_report(split)
    report = read_json_or_none(report_path) or {}
    files = [layout.submission(split, format_named(name).file_name) for name in formats]
    checked = f" ({report['rows']} rows, checked)" if report.get("valid") else " (not written)"
    lines = [f"{split}: {', '.join(files)}{checked}"]
    for size in score_sizes:
        score = read_json_or_none(layout.score(split, size))
        if score:
            lines.append(
                f"  mIoU {score['miou']:.4f} at {size} (per-image mean "
                f"{score['per_image_mean_miou']:.4f}; {layout.score(split, size, 'txt')})"
            )
    stages = []
    outputs = split_outputs(layout, split, shards, score_sizes, formats, members)
    for stage, paths in outputs.items():
        ran, reused, missing = ran_and_reused(paths, started)
        counts = [f"{ran} ran"] * bool(ran) + [f"{reused} reused"] * bool(reused)
        counts += [f"{missing} missing"] * bool(missing)
        stages.append(f"{stage} {', '.join(counts)}")
    lines.append("  " + "; ".join(stages))
    warnings = logged_warnings(split_logs(layout, split, shards, score_sizes))
    warnings += [f"{report_path}: {w}" for w in report.get("warnings", [])]
    return lines, warnings


def run_summary(
    results, splits, scored_splits, score_sizes, shards, started, failed=False,
    formats=("competition_csv",), members=(),
):  # fmt: skip
    """The end-of-run summary text (`started`: the run's start, epoch seconds)."""
    layout = Layout(results)
    header = (
        "segsubmit: run FAILED (the failed jobs' logs are named above)"
        if failed
        else ("segsubmit: run finished")
    )
    lines, warnings = [header], []
    for split in splits:
        sizes = score_sizes if split in scored_splits else []
        split_lines, split_warnings = split_summary(
            layout, split, shards, sizes, started, formats, members
        )
        lines += split_lines
        warnings += split_warnings
    lines.append(f"warnings: {len(warnings)}" + ("" if warnings else " (none)"))
    lines += [f"  {warning}" for warning in warnings]
    if not failed:
        lines.append("report: snakemake --report report.html (with this run's options)")
    return "\n".join(lines)


def with_defaults(config, defaults=None):
    """`config` with every key it lacks taken from the schema's defaults (sections merged)."""
    merged = dict(default_config() if defaults is None else defaults)
    for key, value in config.items():
        both_sections = isinstance(value, dict) and isinstance(merged.get(key), dict)
        merged[key] = with_defaults(value, merged[key]) if both_sections else value
    return merged


def summary_of_config(config, started, failed=False):
    """`run_summary` of the outputs a workflow config (validated or not) asks for."""
    config = with_defaults(config)
    data, size = config["data"], config["resize"]["size"]
    score_sizes = [f"{size[0]}x{size[1]}"] + ["input"] * config["score"]["at_input_size"]
    shards = range(shard_count(data["shards"], config["model"]["device"], visible_gpu_count()))
    members = [member["name"] for member in (config.get("ensemble") or {}).get("members", [])]
    return run_summary(
        config["results"], data["splits"], data["score"], score_sizes, shards, started, failed,
        config["submission"]["formats"], members,
    )  # fmt: skip


def write_run_summary(config, started, failed=False):
    """Print the end-of-run summary to stderr and keep it in <results>/logs/summary.txt (for
    onsuccess/onerror; a workflow importing this one as a module calls it from its own)."""
    text = summary_of_config(config, started, failed)
    print(text, file=sys.stderr)
    path = Path(Layout(with_defaults(config)["results"]).summary())
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp_path:
        tmp_path.write_text(text + "\n", encoding="utf-8")


def cancel_pending_timers():
    """Cancel this process's pending `threading.Timer`s (for onsuccess/onerror, after the
    scheduler's last pass). Snakemake's job rate limiter (`--max-jobs-per-timespan`, 100/1s by
    default) starts a non-daemon 1 s Timer on each pass; Python waits for the last one at exit,
    which added up to a second to every run."""
    for thread in threading.enumerate():
        if isinstance(thread, threading.Timer):
            thread.cancel()


def checkpoint_note(split, json_path, shard_count):
    """Dry-run note for a split whose manifest has not run: the jobs Snakemake cannot list yet,
    counted cheaply from the json (or said to be unknown while the json does not exist)."""
    prefix = f"dry run: {split}: inference jobs appear once the manifest checkpoint has run"
    coco = read_json_or_none(json_path)
    if not isinstance(coco, dict) or not isinstance(coco.get("images"), list):
        return f"{prefix}; {json_path} is not there yet (generated by the run)"
    names = [image.get("file_name", "") for image in coco["images"] if isinstance(image, dict)]
    shards = {shard_of(str(name), shard_count) for name in names}
    return (
        f"{prefix}; {len(names)} images in {json_path} -> ~{len(shards)} infer jobs "
        f"(and as many resize jobs)"
    )
