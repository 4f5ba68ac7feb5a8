"""Rule report_members: each ensemble member's scores against the ensemble's, for the report."""

from segsubmit.logs import rule_params, run_job
from segsubmit.report import report_members_stage

run_job(
    snakemake.log[0],
    report_members_stage,
    threads=snakemake.threads,
    member_score_paths=list(snakemake.input.members),
    ensemble_score_path=snakemake.input.ensemble,
    search_paths=list(snakemake.input.search),
    outputs=dict(snakemake.output.items()),
    **rule_params(snakemake.params),
)
