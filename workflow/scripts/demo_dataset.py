"""Rule demo_dataset: generate the synthetic demo dataset."""

from segsubmit.logs import run_stage
from segsubmit.synthetic import demo_dataset_stage

run_stage(
    snakemake.log[0],
    demo_dataset_stage,
    threads=snakemake.threads,
    data_root=snakemake.output[0],
    counts=snakemake.params.counts,
    seed=snakemake.params.seed,
    image_size=snakemake.params.image_size,
    class_names=snakemake.params.classes,
)
