"""report: figures and tables for `snakemake --report report.html` (captions in
workflow/report/). Per scored split: the score table, per-class IoU, confusion matrix, sample
overlays and the nearest-vs-bilinear panel; once: the per-rule runtimes."""


def report_item(name, caption, category, split="{split}"):
    """A report output of a split, with its caption file and category."""
    return report(
        result(f"{{split}}/report/{name}"),
        caption=f"../report/{caption}",
        category=category,
        subcategory=split,
        labels={"split": split, "figure": caption.removesuffix(".rst")},
    )


rule report_figures:
    input:
        manifest=manifest_file,
        score=result("{split}/score.json"),
        truth=result(f"{{split}}/ground_truth/{SUBMISSION_SIZE}.npz"),
        resized=expand(result("{{split}}/resized/{shard}.npz"), shard=SHARDS),
        labels=expand(result("{{split}}/labels/{shard}.npz"), shard=SHARDS),
    output:
        scores=report_item("scores.html", "scores.rst", "1. Scores"),
        iou=report_item("per_class_iou.png", "per_class_iou.rst", "1. Scores"),
        confusion=report_item("confusion.png", "confusion.rst", "1. Scores"),
        samples=report_item("samples.png", "samples.rst", "2. Predictions"),
        interpolation=report_item(
            "nearest_vs_bilinear.png", "nearest_vs_bilinear.rst", "3. Resizing"
        ),
    log:
        log_path("report_figures", "{split}"),
    benchmark:
        benchmark_path("report_figures", "{split}")
    conda:
        "../../envs/report.yaml"
    params:
        classes=CLASSES,
        code=code_version(
            "report.py", "metrics.py", "resize.py", "labels.py", "atomic.py"
        ),
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
    params:
        benchmarks=result("benchmarks"),
        code=code_version("report.py", "atomic.py"),
    script:
        "../scripts/report_runtimes.py"
