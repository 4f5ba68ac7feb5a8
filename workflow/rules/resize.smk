"""resize: label maps -> submission size (NEAREST) with Albumentations or Kornia."""


rule resize:
    input:
        after_manifest(RESULTS + "/{split}/labels/{shard}.npz"),
    output:
        RESULTS + "/{split}/resized/{shard}.npz",
    params:
        backend=config["resize"]["backend"],
        size=config["resize"]["size"],
        interpolation=config["resize"]["interpolation"],
        allow_bilinear_labels=config["resize"]["allow_bilinear_labels"],
        code=source_digest("resize.py", "labels.py", "atomic.py"),
    log:
        log_path("resize", "{split}/{shard}"),
    script:
        "../scripts/resize.py"
