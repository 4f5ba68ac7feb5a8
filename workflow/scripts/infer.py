"""Rule infer: predict one shard's label maps."""

from segsubmit.infer import infer_stage
from segsubmit.logs import run_stage

run_stage(
    snakemake.log[0],
    infer_stage,
    threads=snakemake.threads,
    shard_path=snakemake.input.shard,
    labels_path=snakemake.output[0],
    backend=snakemake.params.backend,
    predictor_settings={
        **snakemake.params.settings,
        "weights": snakemake.input.weights,
        "config_file": snakemake.input.get("model_config", ""),
    },
    batch_size=snakemake.params.batch_size,
    workers=snakemake.params.workers,
    on_bad_image=snakemake.params.on_bad_image,
    max_image_pixels=snakemake.params.max_image_pixels,
)
