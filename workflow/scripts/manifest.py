"""Checkpoint manifest: validate the COCO json, write manifest + shard files."""

from segsubmit.logs import rule_params, run_job
from segsubmit.manifest import manifest_stage

run_job(
    snakemake.log[0],
    manifest_stage,
    threads=snakemake.threads,
    manifest_path=snakemake.output.manifest,
    shard_paths=snakemake.output.shards,
    **rule_params(snakemake.params, omit=("code", "images", "shards")),
)
