"""Rule demo_dataset: generate the synthetic demo dataset."""

from segsubmit.logs import rule_params, run_job
from segsubmit.synthetic import demo_dataset_stage

run_job(
    snakemake.log[0],
    demo_dataset_stage,
    threads=snakemake.threads,
    data_root=snakemake.output[0],
    **rule_params(snakemake.params),
)
