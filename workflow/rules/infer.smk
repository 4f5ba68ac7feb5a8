"""infer: batched inference per shard -> uint8 argmax label maps at the images' own size.

With `--cache` the rule is cached between workflows (README: "Sharing predictions"). Its key
is Snakemake's provenance hash: this script, the params, the weights' content and, for the
shard file, the manifest job's own hash (the json's content + its params) - not the shard
file's content and not the wildcards. So `shard` is a param and the manifest's params hold the
shard count: without them, every shard of a split would get one key. Snakemake refuses
`benchmark:` on a cacheable rule, so the rule is defined twice: with `benchmark:` unless this
run caches it (the job's log holds its timings and peak memory either way).
"""

INFER_PARAMS = dict(
    shard="{shard}",
    backend=config["model"]["backend"],
    settings={
        "num_classes": len(CLASSES),
        "device": config["model"]["device"],
        "architecture": config["model"]["architecture"],
        "opts": config["model"]["opts"],
        "mean": config["model"]["mean"],
        "std": config["model"]["std"],
        "precision": config["infer"]["precision"],
        "channels_last": config["infer"]["channels_last"],
    },
    batch_size=config["infer"]["batch_size"],
    workers=config["infer"]["workers"],
    on_bad_image=config["infer"]["on_bad_image"],
    max_image_pixels=config["infer"]["max_image_pixels"],
    code=code_digest("infer.py"),
)


if INFER_CACHED:

    rule infer:
        input:
            unpack(model_inputs),
            shard=shard_file,
        output:
            result("{split}/labels/{shard}.npz"),
        log:
            log_path("infer", "{split}/{shard}"),
        cache: "omit-software"
        conda:
            INFER_ENV
        threads: THREADS
        resources:
            gpu=1,
            mem_mb=16000,
            runtime=120,
        params:
            **INFER_PARAMS,
        script:
            "../scripts/infer.py"

else:

    rule infer:
        input:
            unpack(model_inputs),
            shard=shard_file,
        output:
            result("{split}/labels/{shard}.npz"),
        log:
            log_path("infer", "{split}/{shard}"),
        benchmark:
            benchmark_path("infer", "{split}/{shard}")
        conda:
            INFER_ENV
        threads: THREADS
        resources:
            gpu=1,
            mem_mb=16000,
            runtime=120,
        params:
            **INFER_PARAMS,
        script:
            "../scripts/infer.py"
