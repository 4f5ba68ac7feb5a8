"""infer: batched inference per shard -> uint8 argmax label maps at the images' own size.

With `--cache` the rule is cached between workflows (README: "Sharing predictions"). Its key
is Snakemake's provenance hash: this script, the params, the weights' content and, for the
shard file, the manifest job's own hash (the json's content + its params) - not the shard
file's content and not the wildcards. So `shard` is a param and the manifest's params hold the
shard count: without them, every shard of a split would get one key. Snakemake refuses
`benchmark:` on a cacheable rule, so a `--cache` run drops it (`INFER_BENCHMARK`; the job's
log holds its timings and peak memory either way).
"""


rule infer:
    input:
        unpack(model_inputs),
        shard=shard_file,
    output:
        LAYOUT.labels("{split}", "{shard}"),
    log:
        log_path("infer"),
    benchmark:
        INFER_BENCHMARK
    cache: INFER_CACHE
    conda:
        INFER_ENV
    threads: THREADS
    resources:
        gpu=1,
        mem_mb=16000,
        runtime=120,
    params:
        shard="{shard}",
        model=as_params(MODEL),
        infer=as_params(InferSettings.from_config(config)),
        code=rule_digest("infer"),
    script:
        "../scripts/infer.py"
