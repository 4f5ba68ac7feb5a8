"""Settings and input functions of the ensemble rules (workflow/rules/ensemble.smk), apart
from them as Snakemake's linter asks; every name is empty or None without `ensemble:`.
"""

MEMBER_NAMES = ENSEMBLE.names if ENSEMBLE else []
CSVS = list(ENSEMBLE.csvs) if ENSEMBLE else []
SOFT = ENSEMBLE is not None and ENSEMBLE.method == "soft"
# the probabilities' size and sampling: the label resize's NEAREST pixels
MEMBER_OUTPUTS = dict(
    size=config["resize"]["size"],
    sampling="nearest",
    resize_backend=config["resize"]["backend"],
)
# ensemble.infer_jobs: shared -> one infer job per shard for every member (rule infer_members)
SHARED_INFER = ENSEMBLE is not None and ENSEMBLE.infer_jobs == "shared"
SEARCH = ENSEMBLE.weight_search if ENSEMBLE else {"enabled": False}
SEARCH_SPLIT = (SEARCH.get("split") or SCORED_SPLITS[0]) if SEARCH["enabled"] else None


def member(wildcards):
    """The `settings.MemberSettings` of a job's {member}."""
    return ENSEMBLE.member(wildcards.member)


def member_model_inputs(wildcards):
    return member(wildcards).model.files()


def member_env(wildcards):
    return f"../../envs/{member(wildcards).model.declaration.conda_env}"


def shared_infer_env():
    """The conda env of the shared infer job: the members' one env; with `--sdm conda`,
    members of several envs are refused (one process imports every member's backend)."""
    envs = sorted({member.model.declaration.conda_env for member in ENSEMBLE.members})
    if len(envs) > 1 and CONDA_DEPLOYMENT:
        raise SegsubmitError(
            f"ensemble.infer_jobs: shared runs every member in one process, but with --sdm "
            f"conda its members need several envs ({', '.join(envs)}); use infer_jobs: "
            "per_member or members of one backend env"
        )
    return f"../../envs/{envs[0]}"


def shared_member_files(split="{split}", shard="{shard}"):
    """{"<member>.<kind>": path} of every member's labels and probabilities of a shard: the
    shared infer job's outputs, the same files the per-member jobs write."""
    return {
        f"{name}.{kind}": LAYOUT.member(split, name, kind, shard)
        for name in MEMBER_NAMES
        for kind in ("labels", "probabilities")
    }


def shared_backend_digest():
    """`code_digest` of the shared infer script with every member's backend plug-in."""
    backends = {
        m.model.declaration.__name__: m.model.declaration for m in ENSEMBLE.members
    }
    return code_digest("infer_members.py", list(backends.values()))


def member_backend_digest(wildcards):
    """`code_digest` of the member's infer script with its own backend plug-in: another
    member's backend does not rerun it."""
    return code_digest("infer_member.py", [member(wildcards).model.declaration])


def member_outputs(kind):
    """Every shard's file of `kind` of {member} of {split}."""
    return [LAYOUT.member("{split}", "{member}", kind, shard) for shard in SHARDS]


def checked_csvs(wildcards):
    """Every CSV's decoded shards: a member's inference waits for the CSVs' check (ancient: a
    CSV's new check never reruns a member)."""
    return [
        ancient(LAYOUT.ensemble_csv(wildcards.split, index, shard))
        for index in range(len(CSVS))
        for shard in SHARDS
    ]


def member_provenance(wildcards):
    """What a member's score records: its model and TTA, and the rules that made its maps."""
    chosen = member(wildcards)
    rules = ["manifest", "resize", "ground_truth", "score"]
    return {
        "model": chosen.model.provenance(),
        "model_packages": list(chosen.model.declaration.packages),
        "member": {"name": chosen.name, "tta": as_params(chosen.tta)},
        "classes": CLASSES,
        "resize": {
            key: config["resize"][key] for key in ("backend", "interpolation", "size")
        },
        "size": wildcards.size,
        "code": {
            **(
                {"infer_members": shared_backend_digest()}
                if SHARED_INFER
                else {"infer_member": member_backend_digest(wildcards)}
            ),
            **{rule: rule_digest(rule) for rule in rules},
        },
    }


ENSEMBLE_TARGETS = (
    [
        LAYOUT.member_score(split, name, SUBMISSION_SIZE)
        for split in SCORED_SPLITS
        for name in MEMBER_NAMES
    ]
    + [LAYOUT.split_report(split, "members.html") for split in SCORED_SPLITS]
    + ([LAYOUT.weight_search(SEARCH_SPLIT)] if SEARCH_SPLIT else [])
    if ENSEMBLE
    else []
)
