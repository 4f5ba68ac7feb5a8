"""Rule ground_truth: rasterize a split's annotations once per size."""

from segsubmit.ground_truth import ground_truth_stage
from segsubmit.logs import run_stage

run_stage(
    snakemake.log[0],
    ground_truth_stage,
    threads=snakemake.threads,
    json_path=snakemake.params.coco,
    manifest_path=snakemake.input.manifest,
    ground_truth_path=snakemake.output[0],
    class_names=snakemake.params.classes,
    category_map=snakemake.params.category_map,
    size=snakemake.params.size,
)
