"""report: figures and tables for `snakemake --report report.html` (captions in
workflow/report/). Per scored split: the score table, per-class IoU, confusion matrix, sample
overlays and the resizing panel (nearest, bilinear, block max, probability-space); once: the
per-rule runtimes."""


rule report_figures:
    input:
        manifest=manifest_file,
        scores=[LAYOUT.score("{split}", size) for size in SCORE_SIZES],
        truth=LAYOUT.ground_truth("{split}", SUBMISSION_SIZE),
        resized=shard_outputs(SUBMISSION_MAPS),
        labels=shard_outputs(REPORT_LABELS),
        area_labels=shard_outputs(LAYOUT.area_labels) if AREA_LABELS else [],
    output:
        scores=report(
            LAYOUT.split_report("{split}", "scores.html"),
            caption="../report/scores.rst",
            category="1. Scores",
            subcategory="{split}",
            labels={"split": "{split}", "figure": "scores"},
        ),
        iou=report(
            LAYOUT.split_report("{split}", "per_class_iou.png"),
            caption="../report/per_class_iou.rst",
            category="1. Scores",
            subcategory="{split}",
            labels={"split": "{split}", "figure": "per_class_iou"},
        ),
        confusion=report(
            LAYOUT.split_report("{split}", "confusion.png"),
            caption="../report/confusion.rst",
            category="1. Scores",
            subcategory="{split}",
            labels={"split": "{split}", "figure": "confusion"},
        ),
        samples=report(
            LAYOUT.split_report("{split}", "samples.png"),
            caption="../report/samples.rst",
            category="2. Predictions",
            subcategory="{split}",
            labels={"split": "{split}", "figure": "samples"},
        ),
        interpolation=report(
            LAYOUT.split_report("{split}", "nearest_vs_bilinear.png"),
            caption="../report/nearest_vs_bilinear.rst",
            category="3. Resizing",
            subcategory="{split}",
            labels={"split": "{split}", "figure": "nearest_vs_bilinear"},
        ),
    log:
        log_path("report_figures"),
    benchmark:
        benchmark_path("report_figures")
    conda:
        "../../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        class_names=CLASSES,
        ignore_index=config["score"]["ignore_index"],
        code=rule_digest("report"),
    script:
        "../scripts/report.py"


rule report_runtimes:
    input:
        # runs last, so that the benchmark files of the jobs before it exist
        [LAYOUT.submission_report(split) for split in SPLITS],
        [LAYOUT.split_report(split, "scores.html") for split in SCORED_SPLITS],
    output:
        report(
            LAYOUT.runtimes_page(),
            caption="../report/runtimes.rst",
            category="4. Runtimes",
        ),
    log:
        log_path("report_runtimes", "all"),
    benchmark:
        benchmark_path("report_runtimes", "all")
    conda:
        "../../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=15,
    params:
        benchmark_root=LAYOUT.benchmarks(),
        code=rule_digest("report_runtimes"),
    script:
        "../scripts/report_runtimes.py"
