"""Rule weight_search: search soft-vote weights on a scored split (reported, not applied)."""

from segsubmit.ensemble import weight_search_stage
from segsubmit.logs import rule_params, run_job

paths, members = list(snakemake.input.probabilities), len(snakemake.params.names)
shards = len(paths) // members
run_job(
    snakemake.log[0],
    weight_search_stage,
    threads=snakemake.threads,
    first_resized_paths=list(snakemake.input.first),
    probability_paths=[paths[i * shards : (i + 1) * shards] for i in range(members)],
    ground_truth_path=snakemake.input.truth,
    search_path=snakemake.output[0],
    **rule_params(snakemake.params),
)
