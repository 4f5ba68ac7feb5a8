"""Rule report_runtimes: per-rule wall times from the benchmark files that exist now."""

from segsubmit.logs import run_stage
from segsubmit.report import report_runtimes_stage

run_stage(
    snakemake.log[0],
    report_runtimes_stage,
    threads=snakemake.threads,
    benchmark_root=snakemake.params.benchmarks,
    figure_path=snakemake.output[0],
)
