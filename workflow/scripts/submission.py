"""Rule submission: write and check submission.csv."""

from segsubmit.logs import run_stage
from segsubmit.stages import submission_stage

run_stage(
    snakemake.log[0],
    submission_stage,
    manifest_path=snakemake.input.manifest,
    resized_paths=snakemake.input.resized,
    csv_path=snakemake.output[0],
    num_classes=snakemake.params.num_classes,
    size=snakemake.params.size,
)
