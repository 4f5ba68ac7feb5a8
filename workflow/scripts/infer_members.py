"""Rule infer_members (ensemble.infer_jobs: shared): every member's label maps and fp16
probabilities of one shard, from one decode of each image."""

from segsubmit.infer import ModelRun, infer_models_stage
from segsubmit.logs import run_job
from segsubmit.probabilities import ProbabilityOutputs
from segsubmit.settings import InferSettings, ModelSettings, TTASettings, from_params


def member_run(name, model, tta):
    """The `ModelRun` of member `name`: its settings, and its files among the outputs."""
    paths = {"probabilities": snakemake.output[f"{name}.probabilities"]}
    return ModelRun(
        from_params(ModelSettings, model),
        from_params(TTASettings, tta),
        snakemake.output[f"{name}.labels"],
        ProbabilityOutputs.from_params({**snakemake.params.outputs, **paths}),
    )


params = snakemake.params
members = zip(params.names, params.models, params.ttas, strict=True)
run_job(
    snakemake.log[0],
    infer_models_stage,
    threads=snakemake.threads,
    shard_path=snakemake.input.shard,
    runs=[member_run(*member) for member in members],
    infer=from_params(InferSettings, params.infer),
)
