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

Besides its label maps, every infer job writes the argmax of its area-averaged class
probabilities at the submission size (`area_labels`, the same pass) when the submission
(`resize.interpolation: probability`) or a scored split's report needs it and the backend gives
probabilities. `infer_confident` predicts the pseudo-label splits again when
`pseudo_labels.threshold` is set, writing only their confident labels: a threshold change
reruns it and the pseudo-labels, not the labels everything else is made from.
"""

INFER_RESOURCES = dict(gpu=1, mem_mb=16000, runtime=120)
INFER_PARAMS = dict(
    shard="{shard}",
    model=as_params(MODEL),
    infer=as_params(InferSettings.from_config(config)),
    tta=as_params(TTASettings.from_config(config["infer"]["tta"])),
    code=rule_digest("infer"),
)
INFER_OUTPUTS = dict(labels=LAYOUT.labels("{split}", "{shard}"))
# probabilities.ProbabilityOutputs' settings (its paths are the rule's named outputs)
AREA_OUTPUTS = {}
if AREA_LABELS:
    INFER_OUTPUTS["area_labels"] = LAYOUT.area_labels("{split}", "{shard}")
    AREA_OUTPUTS["size"] = config["resize"]["size"]


if INFER_CACHED:

    rule infer:
        input:
            unpack(model_inputs),
            shard=shard_file,
        output:
            **INFER_OUTPUTS,
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
            probability_outputs=AREA_OUTPUTS,
        script:
            "../scripts/infer.py"

else:

    rule infer:
        input:
            unpack(model_inputs),
            shard=shard_file,
        output:
            **INFER_OUTPUTS,
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
            probability_outputs=AREA_OUTPUTS,
            resize_ahead=resize_ahead_plan,
        script:
            "../scripts/infer.py"


if PSEUDO_THRESHOLD > 0 and PSEUDO_SPLITS:

    rule infer_confident:
        input:
            unpack(model_inputs),
            shard=shard_file,
        output:
            confident_labels=LAYOUT.confident_labels("{split}", "{shard}"),
        log:
            log_path("infer_confident"),
        benchmark:
            benchmark_path("infer_confident")
        wildcard_constraints:
            split="|".join(PSEUDO_SPLITS),
        conda:
            INFER_ENV
        threads: THREADS
        resources:
            **INFER_RESOURCES,
        params:
            **INFER_PARAMS,
            probability_outputs=dict(
                threshold=PSEUDO_THRESHOLD,
                ignore_index=config["pseudo_labels"]["ignore_index"],
            ),
        script:
            "../scripts/infer.py"
