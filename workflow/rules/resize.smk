"""resize: label maps -> submission size (NEAREST) with Albumentations or Kornia."""


rule resize:
    input:
        after_manifest(result("{split}/labels/{shard}.npz")),
    output:
        result("{split}/resized/{shard}.npz"),
    log:
        log_path("resize", "{split}/{shard}"),
    benchmark:
        benchmark_path("resize", "{split}/{shard}")
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
        code=code_digest("resize.py"),
    script:
        "../scripts/resize.py"
