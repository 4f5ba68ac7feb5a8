"""Rule submission: write submission.csv, then re-read and check the finished file."""

from segsubmit.logs import run_stage
from segsubmit.submission import submission_stage

run_stage(
    snakemake.log[0],
    submission_stage,
    threads=snakemake.threads,
    manifest_path=snakemake.input.manifest,
    resized_paths=snakemake.input.resized,
    csv_path=snakemake.output.csv,
    report_path=snakemake.output.report,
    num_classes=snakemake.params.num_classes,
    size=snakemake.params.size,
    provenance_settings=snakemake.params.provenance,
    model_files={
        "weights": snakemake.input.weights,
        "model_config": snakemake.input.get("model_config"),
    },
)
