"""score: mIoU against the split's COCO annotations, at the submission size (and optionally at
the model's output size)."""


rule score:
    input:
        unpack(dataset_inputs),
        manifest=manifest_file,
        labels=expand(result("{{split}}/resized/{shard}.npz"), shard=SHARDS),
    output:
        score=result("{split}/score.json"),
        table=result("{split}/score.txt"),
    log:
        log_path("score", "{split}"),
    conda:
        "../../envs/core.yaml"
    params:
        coco=lambda wildcards: coco_json(wildcards.split),
        classes=CLASSES,
        size=config["resize"]["size"],
        code=source_digest("metrics.py", "resize.py", "labels.py", "coco.py"),
    script:
        "../scripts/score.py"


rule score_at_input_size:
    input:
        unpack(dataset_inputs),
        manifest=manifest_file,
        labels=expand(result("{{split}}/labels/{shard}.npz"), shard=SHARDS),
    output:
        score=result("{split}/score_input_size.json"),
        table=result("{split}/score_input_size.txt"),
    log:
        log_path("score_at_input_size", "{split}"),
    conda:
        "../../envs/core.yaml"
    params:
        coco=lambda wildcards: coco_json(wildcards.split),
        classes=CLASSES,
        size=None,
        code=source_digest("metrics.py", "labels.py", "coco.py"),
    script:
        "../scripts/score.py"
