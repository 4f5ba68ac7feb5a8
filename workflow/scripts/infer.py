"""Rule infer: predict one shard's label maps."""

from segsubmit.infer import infer_stage
from segsubmit.logs import run_stage
from segsubmit.settings import InferSettings, ModelSettings, TTASettings, from_params

run_stage(
    snakemake.log[0],
    infer_stage,
    threads=snakemake.threads,
    shard_path=snakemake.input.shard,
    labels_path=snakemake.output[0],
    model=from_params(ModelSettings, snakemake.params.model),
    infer=from_params(InferSettings, snakemake.params.infer),
    tta=from_params(TTASettings, snakemake.params.tta),
)
