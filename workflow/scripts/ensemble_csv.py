"""Rule ensemble_csv: check a teammate's CSV against the split, decode its maps per shard."""

from segsubmit.ensemble import csv_stage
from segsubmit.logs import rule_params, run_job

run_job(
    snakemake.log[0],
    csv_stage,
    threads=snakemake.threads,
    csv_path=snakemake.input.csv,
    manifest_path=snakemake.input.manifest,
    shard_paths=snakemake.input.shards,
    output_paths=list(snakemake.output),
    **rule_params(snakemake.params),
)
