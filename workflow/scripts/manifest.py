"""Checkpoint manifest: validate the COCO json, write manifest + shard files."""

from segsubmit.logs import run_stage
from segsubmit.manifest import manifest_stage

run_stage(
    snakemake.log[0],
    manifest_stage,
    threads=snakemake.threads,
    json_path=snakemake.params.coco,
    data_root=snakemake.params.data_root,
    class_names=snakemake.params.classes,
    category_map=snakemake.params.category_map,
    manifest_path=snakemake.output.manifest,
    shard_paths=snakemake.output.shards,
    max_image_pixels=snakemake.params.max_image_pixels,
)
