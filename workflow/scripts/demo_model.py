"""Rule demo_model: train the demo model on the synthetic train split."""

from segsubmit.demo_model import demo_model_stage
from segsubmit.logs import run_stage

run_stage(
    snakemake.log[0],
    demo_model_stage,
    threads=snakemake.threads,
    data_root=snakemake.input.data,
    class_names=snakemake.params.classes,
    weights_path=snakemake.output[0],
    architecture=snakemake.params.architecture,
    steps=snakemake.params.steps,
    crop=snakemake.params.crop,
    seed=snakemake.params.seed,
    mean=snakemake.params.mean,
    std=snakemake.params.std,
)
