"""report: figures and tables for `snakemake --report report.html` (captions in
workflow/report/). Per scored split: the score table, per-class IoU, confusion matrix, sample
overlays and the nearest-vs-bilinear panel; once: the per-rule runtimes."""


rule report_figures:
    input:
        manifest=manifest_file,
        scores=expand(result("{{split}}/score/{size}.json"), size=SCORE_SIZES),
        truth=result(f"{{split}}/ground_truth/{SUBMISSION_SIZE}.npz"),
        resized=expand(result("{{split}}/resized/{shard}.npz"), shard=SHARDS),
        labels=expand(result("{{split}}/labels/{shard}.npz"), shard=SHARDS),
    output:
        scores=report(
            result("{split}/report/scores.html"),
            caption="../report/scores.rst",
            category="1. Scores",
            subcategory="{split}",
            labels={"split": "{split}", "figure": "scores"},
        ),
        iou=report(
            result("{split}/report/per_class_iou.png"),
            caption="../report/per_class_iou.rst",
            category="1. Scores",
            subcategory="{split}",
            labels={"split": "{split}", "figure": "per_class_iou"},
        ),
        confusion=report(
            result("{split}/report/confusion.png"),
            caption="../report/confusion.rst",
            category="1. Scores",
            subcategory="{split}",
            labels={"split": "{split}", "figure": "confusion"},
        ),
        samples=report(
            result("{split}/report/samples.png"),
            caption="../report/samples.rst",
            category="2. Predictions",
            subcategory="{split}",
            labels={"split": "{split}", "figure": "samples"},
        ),
        interpolation=report(
            result("{split}/report/nearest_vs_bilinear.png"),
            caption="../report/nearest_vs_bilinear.rst",
            category="3. Resizing",
            subcategory="{split}",
            labels={"split": "{split}", "figure": "nearest_vs_bilinear"},
        ),
    log:
        log_path("report_figures", "{split}"),
    benchmark:
        benchmark_path("report_figures", "{split}")
    conda:
        "../../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        classes=CLASSES,
        code=code_digest("report.py"),
    script:
        "../scripts/report.py"


rule report_runtimes:
    input:
        # runs last, so that the benchmark files of the jobs before it exist
        expand(result("{split}/submission.valid.json"), split=SPLITS),
        expand(result("{split}/report/scores.html"), split=SCORED_SPLITS),
    output:
        report(
            result("report/runtimes.png"),
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
        benchmarks=result("benchmarks"),
        code=code_digest("report_runtimes.py"),
    script:
        "../scripts/report_runtimes.py"
