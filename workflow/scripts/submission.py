"""Rule submission: write submission.csv, then re-read and check the finished file."""

from segsubmit.logs import rule_params, run_job
from segsubmit.submission import submission_stage

run_job(
    snakemake.log[0],
    submission_stage,
    threads=snakemake.threads,
    manifest_path=snakemake.input.manifest,
    resized_paths=snakemake.input.resized,
    outputs={name: snakemake.output[name] for name in snakemake.params.formats},
    report_path=snakemake.output.report,
    fragments={
        name: list(snakemake.input[f"{name}_fragment"])
        for name in snakemake.params.fragment_formats
    },
    **rule_params(snakemake.params, omit=("code", "formats", "fragment_formats")),
)
