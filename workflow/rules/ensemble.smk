"""ensemble (docs/ensembles.md): per member, its own infer job per shard (its label maps and
its fp16 class probabilities at the submission size, for a vote too: switching the method
reruns no member) and the resize of its maps; per shard, the combine step (soft or vote) ->
<split>/ensemble/resized, which the submission and the score read in place of
<split>/resized; teammates' CSVs checked and decoded
before any member's inference; on scored splits each member's score, the members' report
and the opt-in weight search. Rules without `ensemble:` in the config are never requested.
With `ensemble.infer_jobs: shared` rule infer_members replaces infer_member: one job per shard
writes every member's files from one decode of each image (any member's change reruns it).

A member job's params are its own settings (+ the resize size and backend its probabilities
are sampled for), the combine step's hold the weights: a weight change reruns the combine
step and after, an added member only its own jobs, the combine step and after.
"""

if SHARED_INFER:

    rule infer_members:
        input:
            **ENSEMBLE.files(),
            shard=shard_file,
            csvs=checked_csvs,
        output:
            **shared_member_files(),
        log:
            log_path("infer_members"),
        benchmark:
            benchmark_path("infer_members")
        conda:
            shared_infer_env()
        threads: THREADS
        resources:
            **INFER_RESOURCES,
        params:
            shard="{shard}",
            names=MEMBER_NAMES,
            models=[as_params(m.model) for m in ENSEMBLE.members],
            infer=as_params(InferSettings.from_config(config)),
            ttas=[as_params(m.tta) for m in ENSEMBLE.members],
            outputs=MEMBER_OUTPUTS,
            backend_code=shared_backend_digest(),
            code=rule_digest("infer_members"),
        script:
            "../scripts/infer_members.py"

else:

    rule infer_member:
        input:
            unpack(member_model_inputs),
            shard=shard_file,
            csvs=checked_csvs,
        output:
            labels=LAYOUT.member("{split}", "{member}", "labels", "{shard}"),
            probabilities=LAYOUT.member(
                "{split}", "{member}", "probabilities", "{shard}"
            ),
        log:
            log_path("infer_member"),
        benchmark:
            benchmark_path("infer_member")
        conda:
            member_env
        threads: THREADS
        resources:
            **INFER_RESOURCES,
        params:
            shard="{shard}",
            model=lambda wildcards: as_params(member(wildcards).model),
            infer=as_params(InferSettings.from_config(config)),
            tta=lambda wildcards: as_params(member(wildcards).tta),
            outputs=MEMBER_OUTPUTS,
            backend_code=member_backend_digest,
            code=rule_digest("infer_member"),
        script:
            "../scripts/infer_member.py"


rule resize_member:
    input:
        labels=after_manifest(LAYOUT.member("{split}", "{member}", "labels", "{shard}")),
    output:
        resized=LAYOUT.member("{split}", "{member}", "resized", "{shard}"),
    log:
        log_path("resize_member"),
    benchmark:
        benchmark_path("resize_member")
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        **RESIZE_SETTINGS,
        fragment_formats=[],
        code=rule_digest("resize"),
    script:
        "../scripts/resize.py"


rule ensemble_csv:
    input:
        csv=lambda wildcards: CSVS[int(wildcards.csv)],
        manifest=manifest_file,
        shards=lambda wildcards: checkpoints.manifest.get(
            split=wildcards.split
        ).output.shards,
    output:
        [LAYOUT.ensemble_csv("{split}", "{csv}", shard) for shard in SHARDS],
    log:
        log_path("ensemble_csv"),
    benchmark:
        benchmark_path("ensemble_csv")
    conda:
        "../../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        csv_key=lambda wildcards: f"ensemble.csvs[{wildcards.csv}]",
        class_names=CLASSES,
        size=config["resize"]["size"],
        code=rule_digest("ensemble_csv"),
    script:
        "../scripts/ensemble_csv.py"


rule ensemble_combine:
    input:
        resized=[
            LAYOUT.member("{split}", name, "resized", "{shard}")
            for name in MEMBER_NAMES
        ]
        + [
            LAYOUT.ensemble_csv("{split}", index, "{shard}")
            for index in range(len(CSVS))
        ],
        probabilities=[
            LAYOUT.member("{split}", name, "probabilities", "{shard}")
            for name in (MEMBER_NAMES if SOFT else [])
        ],
    output:
        LAYOUT.ensemble_resized("{split}", "{shard}"),
    log:
        log_path("ensemble_combine"),
    benchmark:
        benchmark_path("ensemble_combine")
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        method=ENSEMBLE.method if ENSEMBLE else None,
        weights=ENSEMBLE.weights if ENSEMBLE else [],
        names=MEMBER_NAMES,
        num_classes=len(CLASSES),
        code=rule_digest("ensemble_combine"),
    script:
        "../scripts/ensemble_combine.py"


rule score_member:
    input:
        unpack(member_model_inputs),
        truth=LAYOUT.ground_truth("{split}", "{size}"),
        labels=member_outputs("resized"),
    output:
        score=LAYOUT.member_score("{split}", "{member}", "{size}"),
        table=LAYOUT.member_score("{split}", "{member}", "{size}", "txt"),
    log:
        log_path("score_member"),
    benchmark:
        benchmark_path("score_member")
    wildcard_constraints:
        size=SUBMISSION_SIZE,
    conda:
        "../../envs/core.yaml"
    threads: THREADS
    resources:
        mem_mb=8000,
        runtime=30,
    params:
        class_names=CLASSES,
        size_name="{size}",
        ignore_index=config["score"]["ignore_index"],
        model_files=member_model_inputs,
        provenance_settings=member_provenance,
        code=rule_digest("score"),
    script:
        "../scripts/score.py"


rule weight_search:
    input:
        truth=LAYOUT.ground_truth("{split}", SUBMISSION_SIZE),
        first=(
            [LAYOUT.member("{split}", MEMBER_NAMES[0], "resized", s) for s in SHARDS]
            if ENSEMBLE
            else []
        ),
        probabilities=[
            LAYOUT.member("{split}", name, "probabilities", shard)
            for name in MEMBER_NAMES
            for shard in SHARDS
        ],
    output:
        LAYOUT.weight_search("{split}"),
    log:
        log_path("weight_search"),
    benchmark:
        benchmark_path("weight_search")
    conda:
        "../../envs/torch.yaml"
    threads: THREADS
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        names=MEMBER_NAMES,
        weights=ENSEMBLE.weights if ENSEMBLE else [],
        grid=SEARCH.get("grid"),
        rounds=SEARCH.get("rounds"),
        class_names=CLASSES,
        ignore_index=config["score"]["ignore_index"],
        code=rule_digest("weight_search"),
    script:
        "../scripts/weight_search.py"


rule report_members:
    input:
        members=[
            LAYOUT.member_score("{split}", n, SUBMISSION_SIZE) for n in MEMBER_NAMES
        ],
        ensemble=LAYOUT.score("{split}", SUBMISSION_SIZE),
        search=lambda wildcards: (
            [LAYOUT.weight_search(wildcards.split)]
            if wildcards.split == SEARCH_SPLIT
            else []
        ),
    output:
        table=report(
            LAYOUT.split_report("{split}", "members.html"),
            caption="../report/members.rst",
            category="1. Scores",
            subcategory="{split}",
            labels={"split": "{split}", "figure": "members"},
        ),
        chart=report(
            LAYOUT.split_report("{split}", "members_iou.png"),
            caption="../report/members_iou.rst",
            category="1. Scores",
            subcategory="{split}",
            labels={"split": "{split}", "figure": "members_iou"},
        ),
    log:
        log_path("report_members"),
    benchmark:
        benchmark_path("report_members")
    conda:
        "../../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=15,
    params:
        names=MEMBER_NAMES,
        class_names=CLASSES,
        code=rule_digest("report_members"),
    script:
        "../scripts/report_members.py"
