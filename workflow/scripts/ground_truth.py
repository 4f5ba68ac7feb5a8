"""Rule ground_truth: rasterize a split's annotations once per size."""

from segsubmit.ground_truth import ground_truth_stage
from segsubmit.logs import rule_params, run_job

run_job(
    snakemake.log[0],
    ground_truth_stage,
    threads=snakemake.threads,
    manifest_path=snakemake.input.manifest,
    ground_truth_path=snakemake.output[0],
    **rule_params(snakemake.params),
)
