"""Stage rows: the stages after inference as the rules call them (resize with both backends,
submission write, re-read check, ground truth, score), on one label shard."""

from timing import seconds, timed

from segsubmit.ground_truth import ground_truth_stage
from segsubmit.metrics import score_stage
from segsubmit.resize import resize_stage
from segsubmit.submission import submission_stage, validate_file
from segsubmit.testing import CLASSES, DEFAULTS

SIZE = list(DEFAULTS["resize"]["size"])
SIZE_NAME = "x".join(map(str, SIZE))


def stage_calls(work, labels, truth, class_names=CLASSES):
    """{row name: function} for the stages after inference on `labels` (a label shard) with
    `work`/manifest.json; score against `truth` (a ground-truth shard at SIZE)."""
    resized = work / "resized-albumentations.npz"
    calls = {
        f"resize stage ({backend})": lambda backend=backend: resize_stage(
            labels, work / f"resized-{backend}.npz", backend, SIZE, "nearest", False)
        for backend in ("albumentations", "kornia")
    }  # fmt: skip
    calls["submission stage: write, with its re-read check before the rename"] = lambda: (
        submission_stage(work / "manifest.json", [resized],
                         {"competition_csv": work / "submission.csv"}, work / "valid.json",
                         class_names, SIZE)
    )  # fmt: skip
    calls["submission stage: re-read check alone"] = lambda: validate_file(
        work / "submission.csv", work / "manifest.json", "competition_csv", class_names, SIZE
    )
    calls["score stage"] = lambda: score_stage(
        truth, [resized], work / "score.json", work / "score.txt", class_names, SIZE_NAME
    )
    return calls


def time_stages(table, calls, repeats):
    """One row per stage: a warm-up call (imports, page cache), then the median of `repeats`."""
    for name, call in calls.items():
        call()
        table.row(name, seconds(call, repeats))


def stage_rows(table, arguments, work, json_path, labels):
    """Ground truth (timed once: it runs once per split and size), then the other stages."""
    truth = work / "ground_truth.npz"
    truth_seconds, _ = timed(
        lambda: ground_truth_stage(json_path, work / "manifest.json", truth, CLASSES, SIZE)
    )
    table.row("ground truth (once per split and size)", truth_seconds)
    time_stages(table, stage_calls(work, labels, truth), arguments.repeats)
    csv_mb = (work / "submission.csv").stat().st_size / 1e6
    table.row("submission.csv size", csv_mb, unit="MB")
