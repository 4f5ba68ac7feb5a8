"""Rule infer (and infer_confident): predict one shard's label maps, and the outputs derived
from class probabilities its rule names (`probabilities.ProbabilityOutputs`)."""

from segsubmit.ahead import AheadPlan
from segsubmit.infer import infer_stage
from segsubmit.logs import run_job
from segsubmit.probabilities import ProbabilityOutputs
from segsubmit.settings import InferSettings, ModelSettings, TTASettings, from_params

derived = {name: path for name, path in snakemake.output.items() if name != "labels"}
# rule infer's resize_ahead: the resize job's plan (segsubmit.ahead); not in infer_confident
run_job(
    snakemake.log[0],
    infer_stage,
    threads=snakemake.threads,
    shard_path=snakemake.input.shard,
    labels_path=snakemake.output.get("labels"),
    model=from_params(ModelSettings, snakemake.params.model),
    infer=from_params(InferSettings, snakemake.params.infer),
    tta=from_params(TTASettings, snakemake.params.tta),
    outputs=(
        ProbabilityOutputs.from_params({**snakemake.params.probability_outputs, **derived})
        if derived
        else None
    ),
    ahead=AheadPlan.from_params(snakemake.params.get("resize_ahead")),
)
