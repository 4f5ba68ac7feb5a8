"""resize: label maps -> submission size (NEAREST) with Albumentations or Kornia (or another
resize.interpolation; probability: the infer job's area-averaged-probability maps); then the
shard's part of each fragment format's file (submission.csv's rows, encoded and checked), so
that this work runs as each shard is resized, not after the last one. An ensemble member's maps
too: rule resize_member, workflow/rules/ensemble.smk."""


# With resize.interpolation: probability the infer job's probability-space maps (area_labels)
# are the resized maps.
rule resize:
    input:
        **(
            {"area_labels": after_manifest(LAYOUT.area_labels("{split}", "{shard}"))}
            if PROBABILITY_RESIZE
            else {}
        ),
        labels=after_manifest(LAYOUT.labels("{split}", "{shard}")),
    output:
        **fragment_files(),
        resized=LAYOUT.resized("{split}", "{shard}"),
    log:
        log_path("resize"),
    benchmark:
        benchmark_path("resize")
    conda:
        "../../envs/torch.yaml"
    # Spans of maps are resized on `threads` threads, the rows encoded on as many processes.
    threads: THREADS
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        **RESIZE_PARAMS,
        code=rule_digest("resize"),
    script:
        "../scripts/resize.py"
