"""Rule score: mIoU against the cached ground truth."""

from segsubmit.logs import run_stage
from segsubmit.metrics import score_stage

run_stage(
    snakemake.log[0],
    score_stage,
    threads=snakemake.threads,
    ground_truth_path=snakemake.input.truth,
    label_paths=snakemake.input.labels,
    score_path=snakemake.output.score,
    table_path=snakemake.output.table,
    class_names=snakemake.params.classes,
    size_name=snakemake.params.size_name,
    provenance_settings=snakemake.params.provenance,
    model_files={
        "weights": snakemake.input.weights,
        "model_config": snakemake.input.get("model_config"),
    },
)
