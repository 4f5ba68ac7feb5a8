"""resize: label maps -> submission size (NEAREST) with Albumentations or Kornia."""


rule resize:
    input:
        after_manifest(LAYOUT.labels("{split}", "{shard}")),
    output:
        LAYOUT.resized("{split}", "{shard}"),
    log:
        log_path("resize"),
    benchmark:
        benchmark_path("resize")
    conda:
        "../../envs/torch.yaml"
    # One thread: a nearest resize of one shard is memory-bound; shards run side by side.
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        backend=config["resize"]["backend"],
        size=config["resize"]["size"],
        interpolation=config["resize"]["interpolation"],
        allow_bilinear_labels=config["resize"]["allow_bilinear_labels"],
        code=rule_digest("resize"),
    script:
        "../scripts/resize.py"
