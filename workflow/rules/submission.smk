"""submission: submission.csv in manifest order, then an independent re-read check."""


rule submission:
    input:
        manifest=manifest_file,
        resized=expand(result("{{split}}/resized/{shard}.npz"), shard=SHARDS),
    output:
        result("{split}/submission.csv"),
    log:
        log_path("submission", "{split}"),
    benchmark:
        benchmark_path("submission", "{split}")
    conda:
        "../../envs/core.yaml"
    params:
        num_classes=len(CLASSES),
        size=config["resize"]["size"],
        code=code_version("submission.py", "labels.py", "manifest.py", "atomic.py"),
    script:
        "../scripts/submission.py"


rule validate_submission:
    input:
        csv=result("{split}/submission.csv"),
        manifest=manifest_file,
    output:
        result("{split}/submission.valid.json"),
    log:
        log_path("validate_submission", "{split}"),
    benchmark:
        benchmark_path("validate_submission", "{split}")
    conda:
        "../../envs/core.yaml"
    params:
        num_classes=len(CLASSES),
        size=config["resize"]["size"],
        code=code_version("submission.py"),
    script:
        "../scripts/validate_submission.py"
