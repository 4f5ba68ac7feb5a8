"""score: mIoU against the split's COCO annotations, at the submission size (and optionally at
the model's output size). The ground truth is rasterized once per size by its own rule, so a
new model or resize backend only reruns the scoring itself."""


rule ground_truth:
    input:
        unpack(dataset_inputs),
        manifest=manifest_file,
    output:
        result("{split}/ground_truth/{size}.npz"),
    log:
        log_path("ground_truth", "{split}/{size}"),
    benchmark:
        benchmark_path("ground_truth", "{split}/{size}")
    conda:
        "../../envs/core.yaml"
    params:
        coco=lambda wildcards: coco_json(wildcards.split),
        classes=CLASSES,
        size=lambda wildcards: parse_size_name(wildcards.size),
        code=code_version(
            "metrics.py", "resize.py", "labels.py", "coco.py", "manifest.py"
        ),
    script:
        "../scripts/ground_truth.py"


rule score:
    input:
        truth=result(f"{{split}}/ground_truth/{SUBMISSION_SIZE}.npz"),
        labels=expand(result("{{split}}/resized/{shard}.npz"), shard=SHARDS),
    output:
        score=result("{split}/score.json"),
        table=result("{split}/score.txt"),
    log:
        log_path("score", "{split}"),
    benchmark:
        benchmark_path("score", "{split}")
    conda:
        "../../envs/core.yaml"
    params:
        classes=CLASSES,
        size_name=SUBMISSION_SIZE,
        code=code_version("metrics.py", "labels.py"),
    script:
        "../scripts/score.py"


rule score_at_input_size:
    input:
        truth=result("{split}/ground_truth/input.npz"),
        labels=expand(result("{{split}}/labels/{shard}.npz"), shard=SHARDS),
    output:
        score=result("{split}/score_input_size.json"),
        table=result("{split}/score_input_size.txt"),
    log:
        log_path("score_at_input_size", "{split}"),
    benchmark:
        benchmark_path("score_at_input_size", "{split}")
    conda:
        "../../envs/core.yaml"
    params:
        classes=CLASSES,
        size_name="input",
        code=code_version("metrics.py", "labels.py"),
    script:
        "../scripts/score.py"
