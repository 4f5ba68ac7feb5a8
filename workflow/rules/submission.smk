"""submission: submission.csv in manifest order, then an independent re-read check."""


rule submission:
    input:
        manifest=manifest_file,
        resized=expand(RESULTS + "/{{split}}/resized/{shard}.npz", shard=SHARDS),
    output:
        RESULTS + "/{split}/submission.csv",
    params:
        num_classes=len(CLASSES),
        size=config["resize"]["size"],
        code=source_digest("submission.py", "labels.py", "manifest.py", "atomic.py"),
    log:
        log_path("submission", "{split}"),
    script:
        "../scripts/submission.py"


rule validate_submission:
    input:
        csv=RESULTS + "/{split}/submission.csv",
        manifest=manifest_file,
    output:
        RESULTS + "/{split}/submission.valid.json",
    params:
        num_classes=len(CLASSES),
        size=config["resize"]["size"],
        code=source_digest("submission.py"),
    log:
        log_path("validate_submission", "{split}"),
    script:
        "../scripts/validate_submission.py"
