"""Rule score: mIoU against the cached ground truth."""

from segsubmit.logs import rule_params, run_job
from segsubmit.metrics import score_stage

run_job(
    snakemake.log[0],
    score_stage,
    threads=snakemake.threads,
    ground_truth_path=snakemake.input.truth,
    label_paths=snakemake.input.labels,
    score_path=snakemake.output.score,
    table_path=snakemake.output.table,
    **rule_params(snakemake.params),
)
