"""Rule resize: label maps -> submission size."""

from segsubmit.logs import rule_params, run_stage
from segsubmit.resize import resize_stage

run_stage(
    snakemake.log[0],
    resize_stage,
    threads=snakemake.threads,
    labels_path=snakemake.input[0],
    resized_path=snakemake.output[0],
    **rule_params(snakemake.params),
)
