"""submission: submission.csv in manifest order, then a re-read check of the finished file (in
the same job: one process start fewer on the run's critical path)."""


rule submission:
    input:
        unpack(model_inputs),
        manifest=manifest_file,
        resized=expand(result("{{split}}/resized/{shard}.npz"), shard=SHARDS),
    output:
        csv=result("{split}/submission.csv"),
        report=result("{split}/submission.valid.json"),
    log:
        log_path("submission", "{split}"),
    benchmark:
        benchmark_path("submission", "{split}")
    conda:
        "../../envs/core.yaml"
    threads: THREADS
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        num_classes=len(CLASSES),
        size=config["resize"]["size"],
        provenance=provenance_settings(["manifest", "infer", "resize", "submission"]),
        code=code_digest("submission.py"),
    script:
        "../scripts/submission.py"
