"""Rule infer_member: predict one shard's label maps and fp16 probabilities for a member."""

from segsubmit.infer import infer_stage
from segsubmit.logs import run_job
from segsubmit.probabilities import ProbabilityOutputs
from segsubmit.settings import InferSettings, ModelSettings, TTASettings, from_params

probabilities = {**snakemake.params.outputs, "probabilities": snakemake.output.probabilities}
run_job(
    snakemake.log[0],
    infer_stage,
    threads=snakemake.threads,
    shard_path=snakemake.input.shard,
    labels_path=snakemake.output.labels,
    model=from_params(ModelSettings, snakemake.params.model),
    infer=from_params(InferSettings, snakemake.params.infer),
    tta=from_params(TTASettings, snakemake.params.tta),
    outputs=ProbabilityOutputs.from_params(probabilities),
)
