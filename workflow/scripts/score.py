"""Rules score / score_at_input_size: mIoU against the split's annotations."""

from segsubmit.logs import run_stage
from segsubmit.stages import score_stage

run_stage(
    snakemake.log[0],
    score_stage,
    json_path=snakemake.params.coco,
    manifest_path=snakemake.input.manifest,
    label_paths=snakemake.input.labels,
    score_path=snakemake.output.score,
    table_path=snakemake.output.table,
    class_names=snakemake.params.classes,
    size=snakemake.params.size,
)
