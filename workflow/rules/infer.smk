"""infer: batched inference per shard -> uint8 argmax label maps at the images' own size."""


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
        code=code_digest("infer.py"),
    script:
        "../scripts/infer.py"
