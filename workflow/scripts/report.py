"""Rule report_figures: a scored split's score table and figures for `snakemake --report`."""

from segsubmit.logs import rule_params, run_job
from segsubmit.report import report_figures_stage

run_job(
    snakemake.log[0],
    report_figures_stage,
    threads=snakemake.threads,
    manifest_path=snakemake.input.manifest,
    score_paths=snakemake.input.scores,
    truth_path=snakemake.input.truth,
    resized_paths=snakemake.input.resized,
    label_paths=snakemake.input.labels,
    area_label_paths=snakemake.input.area_labels,
    outputs=dict(snakemake.output.items()),
    **rule_params(snakemake.params),
)
