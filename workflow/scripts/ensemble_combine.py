"""Rule ensemble_combine: one shard's ensemble maps (soft or vote) at the submission size."""

from segsubmit.ensemble import combine_stage
from segsubmit.logs import rule_params, run_job

run_job(
    snakemake.log[0],
    combine_stage,
    threads=snakemake.threads,
    resized_paths=list(snakemake.input.resized),
    probability_paths=list(snakemake.input.probabilities),
    combined_path=snakemake.output[0],
    **rule_params(snakemake.params),
)
