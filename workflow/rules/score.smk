"""score: mIoU against the split's COCO annotations, at the submission size (and optionally at
the model's output size, `score.at_input_size`). The ground truth is rasterized once per size by
its own rule, so a new model or resize backend only reruns the scoring itself."""


rule ground_truth:
    input:
        unpack(truth_inputs),
        manifest=manifest_file,
    output:
        LAYOUT.ground_truth("{split}", "{size}"),
    log:
        log_path("ground_truth"),
    benchmark:
        benchmark_path("ground_truth")
    conda:
        "../../envs/core.yaml"
    threads: THREADS
    resources:
        mem_mb=8000,
        runtime=30,
    params:
        json_path=lambda wildcards: coco_json(wildcards.split),
        class_names=CLASSES,
        category_map=config["data"]["category_map"],
        size=lambda wildcards: parse_size_name(wildcards.size),
        masks=truth_masks,
        ignore_index=config["score"]["ignore_index"],
        code=rule_digest("ground_truth"),
    script:
        "../scripts/ground_truth.py"


rule score:
    input:
        unpack(result_model_inputs),
        truth=LAYOUT.ground_truth("{split}", "{size}"),
        labels=scored_label_maps,
    output:
        score=LAYOUT.score("{split}", "{size}"),
        table=LAYOUT.score("{split}", "{size}", "txt"),
    log:
        log_path("score"),
    benchmark:
        benchmark_path("score")
    wildcard_constraints:
        size="|".join(SCORE_SIZES),
    conda:
        "../../envs/core.yaml"
    threads: THREADS
    resources:
        mem_mb=8000,
        runtime=30,
    params:
        class_names=CLASSES,
        size_name="{size}",
        ignore_index=config["score"]["ignore_index"],
        model_files=RESULT_MODEL_FILES,
        provenance_settings=lambda wildcards: provenance_settings(
            ["manifest", "infer"]
            + ([] if wildcards.size == "input" else ["resize"])
            + ["ground_truth", "score"],
            wildcards.size,
        ),
        code=rule_digest("score"),
    script:
        "../scripts/score.py"
