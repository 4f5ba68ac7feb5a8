"""Rule pseudo_labels: a split's predictions as training data (MMSeg ann_dir + COCO json)."""

from segsubmit.logs import rule_params, run_job
from segsubmit.pseudo_labels import pseudo_labels_stage

run_job(
    snakemake.log[0],
    pseudo_labels_stage,
    threads=snakemake.threads,
    manifest_path=snakemake.input.manifest,
    label_paths=snakemake.input.labels,
    output_dir=snakemake.output[0],
    **rule_params(snakemake.params),
)
