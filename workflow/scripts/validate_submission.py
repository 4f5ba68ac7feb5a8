"""Rule validate_submission: re-read the finished submission.csv against the manifest."""

from segsubmit.logs import run_stage
from segsubmit.stages import validate_stage

run_stage(
    snakemake.log[0],
    validate_stage,
    csv_path=snakemake.input.csv,
    manifest_path=snakemake.input.manifest,
    report_path=snakemake.output[0],
    num_classes=snakemake.params.num_classes,
    size=snakemake.params.size,
)
