"""Rule resize: label maps -> submission size, and the shard's submission fragments."""

from segsubmit.ahead import AheadPlan
from segsubmit.fragments import resize_shard_stage
from segsubmit.logs import rule_params, run_job

fragments = {
    name: snakemake.output[f"{name}_fragment"] for name in snakemake.params.fragment_formats
}
run_job(
    snakemake.log[0],
    resize_shard_stage,
    threads=snakemake.threads,
    labels_path=snakemake.input.labels,
    area_labels_path=snakemake.input.get("area_labels"),
    resized_path=snakemake.output.resized,
    fragments=fragments,
    ahead=AheadPlan(snakemake.output.resized, fragments, dict(snakemake.params.items())),
    **rule_params(snakemake.params, omit=("code", "fragment_formats")),
)
