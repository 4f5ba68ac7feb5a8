"""Rule ground_truth: rasterize a split's annotations once per size."""

from segsubmit.logs import run_stage
from segsubmit.stages import ground_truth_stage

run_stage(
    snakemake.log[0],
    ground_truth_stage,
    json_path=snakemake.params.coco,
    manifest_path=snakemake.input.manifest,
    ground_truth_path=snakemake.output[0],
    class_names=snakemake.params.classes,
    size=snakemake.params.size,
)
