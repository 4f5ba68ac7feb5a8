"""The embedded default: a synthetic COCO dataset and a demo model trained on it (CPU)."""


rule demo_dataset:
    output:
        directory(DEMO_ROOT),
    log:
        log_path("demo_dataset", "demo"),
    benchmark:
        benchmark_path("demo_dataset", "demo")
    conda:
        "../../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        counts=config["demo"]["images"],
        seed=config["demo"]["seed"],
        image_size=config["demo"]["image_size"],
        class_names=CLASSES,
        code=rule_digest("demo_dataset"),
    script:
        "../scripts/demo_dataset.py"


rule demo_model:
    input:
        data=DEMO_ROOT,
    output:
        LAYOUT.demo_model(),
    log:
        log_path("demo_model", "demo"),
    benchmark:
        benchmark_path("demo_model", "demo")
    conda:
        "../../envs/torch.yaml"
    # Fixed, not `threads`: the demo model (and its documented score) is the same everywhere.
    threads: 2
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        architecture=config["model"]["torchvision"]["architecture"],
        steps=config["demo"]["train_steps"],
        crop=config["demo"]["crop"],
        seed=config["demo"]["seed"],
        class_names=CLASSES,
        mean=config["model"]["mean"],
        std=config["model"]["std"],
        code=rule_digest("demo_model"),
    script:
        "../scripts/demo_model.py"
