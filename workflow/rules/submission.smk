"""submission: each configured format's file (submission.formats) in manifest order, each
re-read and checked before its final name (in the same job: one process start fewer on the
run's critical path), then submission.valid.json. Formats with per-shard fragments (the CSV)
are gathered from what the resize jobs encoded and checked."""


rule submission:
    input:
        unpack(result_model_inputs),
        **fragment_inputs(),
        manifest=manifest_file,
        resized=shard_outputs(SUBMISSION_MAPS),
    output:
        **submission_files(),
        report=LAYOUT.submission_report("{split}"),
    log:
        log_path("submission"),
    benchmark:
        benchmark_path("submission")
    conda:
        "../../envs/core.yaml"
    threads: THREADS
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        class_names=CLASSES,
        size=config["resize"]["size"],
        formats=[fmt.name for fmt in FORMATS],
        fragment_formats=[fmt.name for fmt in FRAGMENT_FORMATS],
        submission_options=config["submission"],
        model_files=RESULT_MODEL_FILES,
        provenance_settings=provenance_settings(
            ["manifest", "infer", "resize", "submission"]
        ),
        code=rule_digest("submission"),
    script:
        "../scripts/submission.py"


rule pseudo_labels:
    input:
        manifest=manifest_file,
        # with pseudo_labels.threshold: infer_confident's maps (ignore_index where unsure)
        labels=shard_outputs(
            LAYOUT.confident_labels if PSEUDO_THRESHOLD > 0 else LAYOUT.labels
        ),
    output:
        directory(LAYOUT.pseudo_labels("{split}")),
    log:
        log_path("pseudo_labels"),
    benchmark:
        benchmark_path("pseudo_labels")
    conda:
        "../../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        class_names=CLASSES,
        threshold=PSEUDO_THRESHOLD,
        ignore_index=config["pseudo_labels"]["ignore_index"],
        code=rule_digest("pseudo_labels"),
    script:
        "../scripts/pseudo_labels.py"
