"""Rule report_runtimes: per-rule wall times from the benchmark files that exist now."""

from segsubmit.logs import rule_params, run_job
from segsubmit.report import report_runtimes_stage

run_job(
    snakemake.log[0],
    report_runtimes_stage,
    threads=snakemake.threads,
    page_path=snakemake.output[0],
    **rule_params(snakemake.params),
)
