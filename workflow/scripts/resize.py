"""Rule resize: label maps -> submission size."""

from segsubmit.logs import rule_params, run_stage
from segsubmit.resize import resize_stage

run_stage(
    snakemake.log[0],
    resize_stage,
    threads=snakemake.threads,
    labels_path=snakemake.input.labels,
    area_labels_path=snakemake.input.get("area_labels"),
    resized_path=snakemake.output[0],
    **rule_params(snakemake.params),
)
