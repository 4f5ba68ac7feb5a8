"""manifest: validate a split's COCO json and images; one small file per shard.

A checkpoint, so that after it runs Snakemake re-checks each shard file by content: adding an
image reruns only the shard that receives it.
"""


checkpoint manifest:
    input:
        unpack(dataset_inputs),
    output:
        manifest=LAYOUT.manifest("{split}"),
        shards=shard_outputs(LAYOUT.shard),
    log:
        log_path("manifest"),
    benchmark:
        benchmark_path("manifest")
    conda:
        "../../envs/core.yaml"
    # Each image is resolved, its header read and its bytes hashed, `threads` at a time.
    threads: THREADS
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        json_path=lambda wildcards: coco_json(wildcards.split),
        images=images_fingerprint,
        data_root=DATA_ROOT,
        class_names=CLASSES,
        category_map=config["data"]["category_map"],
        max_image_pixels=config["infer"]["max_image_pixels"],
        shards=len(SHARDS),  # in the infer cache key (through this job's provenance hash)
        code=rule_digest("manifest"),
    script:
        "../scripts/manifest.py"


def shard_file(wildcards):
    """The shard file of one (split, shard), known once the manifest checkpoint ran."""
    shards = checkpoints.manifest.get(split=wildcards.split).output.shards
    return shards[int(wildcards.shard)]


def after_manifest(pattern):
    """Input function for `pattern`, evaluated only once the split's manifest checkpoint ran,
    so that a shard whose inputs did not change is not rerun."""

    def input_after_manifest(wildcards):
        checkpoints.manifest.get(split=wildcards.split)
        return pattern.format(**wildcards)

    return input_after_manifest


def manifest_file(wildcards):
    """The full, ordered manifest of a split."""
    return checkpoints.manifest.get(split=wildcards.split).output.manifest
