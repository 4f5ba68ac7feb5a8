"""Rule demo_dataset: generate the synthetic demo dataset."""

from segsubmit.logs import run_stage
from segsubmit.stages import demo_dataset_stage

root = snakemake.output[0]
run_stage(
    snakemake.log[0],
    demo_dataset_stage,
    data_root=root,
    json_paths={split: f"{root}/{split}.json" for split in ("train", "val", "test")},
    counts=snakemake.params.counts,
    seed=snakemake.params.seed,
    image_size=snakemake.params.image_size,
    class_names=snakemake.params.classes,
)
