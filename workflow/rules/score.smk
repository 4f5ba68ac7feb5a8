"""score: mIoU against the split's COCO annotations, at the submission size (and optionally at
the model's output size)."""


rule score:
    input:
        unpack(dataset_inputs),
        manifest=manifest_file,
        labels=expand(RESULTS + "/{{split}}/resized/{shard}.npz", shard=SHARDS),
    output:
        score=RESULTS + "/{split}/score.json",
        table=RESULTS + "/{split}/score.txt",
    params:
        coco=lambda wildcards: coco_json(wildcards.split),
        classes=CLASSES,
        size=config["resize"]["size"],
        code=source_digest("metrics.py", "resize.py", "labels.py", "coco.py"),
    log:
        log_path("score", "{split}"),
    script:
        "../scripts/score.py"


rule score_at_input_size:
    input:
        unpack(dataset_inputs),
        manifest=manifest_file,
        labels=expand(RESULTS + "/{{split}}/labels/{shard}.npz", shard=SHARDS),
    output:
        score=RESULTS + "/{split}/score_input_size.json",
        table=RESULTS + "/{split}/score_input_size.txt",
    params:
        coco=lambda wildcards: coco_json(wildcards.split),
        classes=CLASSES,
        size=None,
        code=source_digest("metrics.py", "labels.py", "coco.py"),
    log:
        log_path("score_at_input_size", "{split}"),
    script:
        "../scripts/score.py"
