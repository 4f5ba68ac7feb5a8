"""Rule demo_model: train the demo model on the synthetic train split."""

from segsubmit.demo_model import demo_model_stage
from segsubmit.logs import rule_params, run_job

run_job(
    snakemake.log[0],
    demo_model_stage,
    threads=snakemake.threads,
    data_root=snakemake.input.data,
    weights_path=snakemake.output[0],
    **rule_params(snakemake.params),
)
