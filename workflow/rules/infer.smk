"""infer: batched inference per shard -> uint8 argmax label maps at the images' own size.

With `--cache` the rule is cached between workflows (README: "Sharing predictions"). Its key
is Snakemake's provenance hash: this script, the params, the weights' content and, for the
shard file, the manifest job's own hash (the json's content + its params) - not the shard
file's content and not the wildcards. So `shard` is a param and the manifest's params hold the
shard count: without them, every shard of a split would get one key. Snakemake refuses
`benchmark:` on a cacheable rule and checks it while the rule is defined (`benchmark:` takes
no "none" value: None, "" and [] are refused), so a `--cache` run defines the rule without it
(the job's log holds its timings and peak memory either way); both definitions share
`INFER_RESOURCES` and `INFER_PARAMS`.
"""

INFER_RESOURCES = dict(gpu=1, mem_mb=16000, runtime=120)
INFER_PARAMS = dict(
    shard="{shard}",
    model=as_params(MODEL),
    infer=as_params(InferSettings.from_config(config)),
    tta=as_params(TTASettings.from_config(config["infer"]["tta"])),
    code=rule_digest("infer"),
)


if INFER_CACHED:

    rule infer:
        input:
            unpack(model_inputs),
            shard=shard_file,
        output:
            LAYOUT.labels("{split}", "{shard}"),
        log:
            log_path("infer"),
        cache: "omit-software"
        conda:
            INFER_ENV
        threads: THREADS
        resources:
            **INFER_RESOURCES,
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
            LAYOUT.labels("{split}", "{shard}"),
        log:
            log_path("infer"),
        benchmark:
            benchmark_path("infer")
        conda:
            INFER_ENV
        threads: THREADS
        resources:
            **INFER_RESOURCES,
        params:
            **INFER_PARAMS,
        script:
            "../scripts/infer.py"
