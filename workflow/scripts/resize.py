"""Rule resize: label maps -> submission size."""

from segsubmit.logs import run_stage
from segsubmit.resize import resize_stage

run_stage(
    snakemake.log[0],
    resize_stage,
    threads=snakemake.threads,
    labels_path=snakemake.input[0],
    resized_path=snakemake.output[0],
    backend=snakemake.params.backend,
    size=snakemake.params.size,
    interpolation=snakemake.params.interpolation,
    allow_bilinear_labels=snakemake.params.allow_bilinear_labels,
)
