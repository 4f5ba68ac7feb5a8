"""resize: label maps -> submission size (NEAREST) with Albumentations or Kornia; then the
shard's part of each fragment format's file (submission.csv's rows, encoded and checked), so
that this work runs as each shard is resized, not after the last one."""


rule resize:
    input:
        after_manifest(LAYOUT.labels("{split}", "{shard}")),
    output:
        **fragment_files(),
        resized=LAYOUT.resized("{split}", "{shard}"),
    log:
        log_path("resize"),
    benchmark:
        benchmark_path("resize")
    conda:
        "../../envs/torch.yaml"
    # A nearest resize is memory-bound; the fragments' rows are encoded `threads` at a time.
    threads: THREADS
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        backend=config["resize"]["backend"],
        size=config["resize"]["size"],
        interpolation=config["resize"]["interpolation"],
        allow_bilinear_labels=config["resize"]["allow_bilinear_labels"],
        fragment_formats=[fmt.name for fmt in FRAGMENT_FORMATS],
        class_names=CLASSES,
        code=rule_digest("resize"),
    script:
        "../scripts/resize.py"
