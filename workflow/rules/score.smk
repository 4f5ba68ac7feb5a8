"""score: mIoU against the split's COCO annotations, at the submission size (and optionally at
the model's output size, `score.at_input_size`). The ground truth is rasterized once per size by
its own rule, so a new model or resize backend only reruns the scoring itself."""


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
    threads: THREADS
    resources:
        mem_mb=8000,
        runtime=30,
    params:
        coco=lambda wildcards: coco_json(wildcards.split),
        classes=CLASSES,
        category_map=config["data"]["category_map"],
        size=lambda wildcards: parse_size_name(wildcards.size),
        code=code_digest("ground_truth.py"),
    script:
        "../scripts/ground_truth.py"


rule score:
    input:
        unpack(model_inputs),
        truth=result("{split}/ground_truth/{size}.npz"),
        labels=scored_label_maps,
    output:
        score=result("{split}/score/{size}.json"),
        table=result("{split}/score/{size}.txt"),
    log:
        log_path("score", "{split}/{size}"),
    benchmark:
        benchmark_path("score", "{split}/{size}")
    wildcard_constraints:
        size="|".join(SCORE_SIZES),
    conda:
        "../../envs/core.yaml"
    threads: THREADS
    resources:
        mem_mb=8000,
        runtime=30,
    params:
        classes=CLASSES,
        size_name="{size}",
        provenance=lambda wildcards: provenance_settings(
            ["manifest", "infer"]
            + ([] if wildcards.size == "input" else ["resize"])
            + ["ground_truth", "score"],
            wildcards.size,
        ),
        code=code_digest("score.py"),
    script:
        "../scripts/score.py"
