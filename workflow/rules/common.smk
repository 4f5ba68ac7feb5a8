"""Paths and settings shared by the rules (derived from the validated, checked config)."""

import functools

from snakemake_interface_executor_plugins.settings import DeploymentMethod

from segsubmit.codehash import script_digest
from segsubmit.errors import SegsubmitError
from segsubmit.config import (
    cache_requested,
    check_output_cache,
    mask_folder,
    shard_count,
    split_json,
    visible_gpu_count,
)
from segsubmit.layout import JOB_PATTERNS, Layout
from segsubmit.ground_truth import mask_path
from segsubmit.manifest import Manifest, image_fingerprint
from segsubmit.plugins import backend_named, format_named
from segsubmit.settings import (
    EnsembleSettings,
    InferSettings,
    ModelSettings,
    TTASettings,
    as_params,
)

SCRIPTS_DIR = os.path.join(str(workflow.current_basedir), "..", "scripts")
LAYOUT = Layout(config["results"])
BACKEND = backend_named(config["model"]["backend"])
INFER_ENV = f"../../envs/{BACKEND.conda_env}"
THREADS = config["threads"]
CONDA_DEPLOYMENT = (
    DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method
)
# `--cache`: shard predictions are shared between checkouts through $SNAKEMAKE_OUTPUT_CACHE.
INFER_CACHED = cache_requested(workflow.workflow_settings.cache, "infer")
if INFER_CACHED:
    check_output_cache(os.environ)


def code_digest(script, plugins=()):
    """Digest of the package modules `workflow/scripts/<script>` reaches through its imports,
    and of the plug-ins it loads by name (`plugins`: their declaration classes): editing any of
    them reruns the rule, editing any other module does not."""
    modules = [plugin.__module__ for plugin in plugins]
    return script_digest(os.path.join(SCRIPTS_DIR, script), extra_modules=modules)


CLASSES = config["classes"]
SUBMISSION_SIZE = "{}x{}".format(*config["resize"]["size"])
SCORE_SIZES = [SUBMISSION_SIZE] + (
    ["input"] if config["score"]["at_input_size"] else []
)
SPLITS = list(config["data"]["splits"])
SCORED_SPLITS = config["data"]["score"]
SHARDS_VARIABLE = "SEGSUBMIT_SHARDS"


def resolved_shard_count():
    """`data.shards` as a number, decided once by the main snakemake process and handed to
    the jobs it starts through the environment: a cluster job parses this workflow again on
    another host, where `auto` could count other GPUs."""
    if not workflow.is_main_process and os.environ.get(SHARDS_VARIABLE):
        return int(os.environ[SHARDS_VARIABLE])
    data, model = config["data"], config["model"]
    count = shard_count(data["shards"], model["device"], visible_gpu_count())
    os.environ[SHARDS_VARIABLE] = str(count)
    return count


SHARDS = list(range(resolved_shard_count()))
USE_DEMO_DATA = config["data"]["root"] is None
USE_DEMO_MODEL = config["model"]["weights"] is None
DEMO_ROOT = LAYOUT.demo_data()
DATA_ROOT = DEMO_ROOT if USE_DEMO_DATA else config["data"]["root"]
WEIGHTS = LAYOUT.demo_model() if USE_DEMO_MODEL else config["model"]["weights"]
MODEL = ModelSettings.from_config(config, WEIGHTS)
FORMATS = [format_named(name) for name in config["submission"]["formats"]]
# `ensemble:` (docs/ensembles.md): the members' combined maps replace the single model's.
ENSEMBLE = EnsembleSettings.from_config(config, LAYOUT.demo_model())
SUBMISSION_MAPS = LAYOUT.ensemble_resized if ENSEMBLE else LAYOUT.resized
RESULT_MODEL_FILES = ENSEMBLE.files() if ENSEMBLE else MODEL.files()


def first_member_labels(split, shard):
    """The first ensemble member's maps at the images' size (the report's resizing panel)."""
    return LAYOUT.member(split, ENSEMBLE.names[0], "labels", shard)


REPORT_LABELS = first_member_labels if ENSEMBLE else LAYOUT.labels


PROBABILITY_RESIZE = config["resize"]["interpolation"] == "probability"
# Infer jobs write area_labels (probability-space resizing): for the submission, or for the
# report of scored splits; only backends whose predictors give class probabilities can.
AREA_LABELS = (
    not ENSEMBLE
    and BACKEND.probabilities
    and (PROBABILITY_RESIZE or bool(SCORED_SPLITS))
)
PSEUDO_SPLITS = config["pseudo_labels"]["splits"]
PSEUDO_THRESHOLD = config["pseudo_labels"]["threshold"]
# Formats whose per-shard parts the resize jobs write (the submission job gathers them); an
# ensemble's CSV is written in one pass by its submission job (the combine jobs write none).
FRAGMENT_FORMATS = [] if ENSEMBLE else [fmt for fmt in FORMATS if fmt.fragments]


wildcard_constraints:
    split="|".join(SPLITS),
    size=r"input|\d+x\d+",
    shard=r"\d+",
    member="|".join(ENSEMBLE.names) if ENSEMBLE else "(?!)",
    csv=r"\d+",


def coco_json(split):
    """The COCO json of a split (under the demo data root when no data is configured)."""
    if USE_DEMO_DATA:
        return f"{DEMO_ROOT}/{split}.json"
    return split_json(config, split)


def dataset_inputs(wildcards):
    """What a split's manifest/ground truth depends on: the json (or the generated demo data)."""
    if USE_DEMO_DATA:
        return {"data": DEMO_ROOT}
    return {"coco": coco_json(wildcards.split)}


def images_fingerprint(wildcards):
    """The manifest's params entry for the images themselves (see `image_fingerprint`)."""
    return (
        ""
        if USE_DEMO_DATA
        else image_fingerprint(
            coco_json(wildcards.split), DATA_ROOT, config["data"]["fingerprint"]
        )
    )


def truth_inputs(wildcards):
    """What a split's ground truth is read from: the json (or the demo data), or with
    data.masks each image's label PNG (known once the manifest checkpoint ran)."""
    folder = mask_folder(config, wildcards.split)
    if folder is None:
        return dataset_inputs(wildcards)
    manifest = Manifest.load(manifest_file(wildcards))
    masks = config["data"]["masks"]
    return {
        "masks": [
            str(mask_path(folder, e.file_name, masks["image_suffix"], masks["suffix"]))
            for e in manifest.images
        ]
    }


def truth_masks(wildcards):
    """The ground truth rule's `masks` setting: data.masks with the split's folder."""
    folder = mask_folder(config, wildcards.split)
    return None if folder is None else {**config["data"]["masks"], "folder": folder}


def model_inputs(wildcards):
    """Model files: the weights (a file or a folder) and the backend's file options."""
    return MODEL.files()


def result_model_inputs(wildcards):
    """The model files a submission or score was made with (every member's in an ensemble)."""
    return RESULT_MODEL_FILES


def parse_size_name(size_name):
    """'256x256' -> [256, 256]; 'input' -> None (the images' own size)."""
    return None if size_name == "input" else [int(v) for v in size_name.split("x")]


def benchmark_path(rule_name, pattern=None):
    """Snakemake's per-job benchmark file (wall time, memory) of a rule's job."""
    return LAYOUT.benchmark(rule_name, pattern or JOB_PATTERNS[rule_name])


def log_path(rule_name, pattern=None):
    """Log file of a rule's job."""
    return LAYOUT.log(rule_name, pattern or JOB_PATTERNS[rule_name])


RULE_PLUGINS = {
    "infer": [BACKEND],
    "resize": FRAGMENT_FORMATS,
    "submission": FORMATS,
}  # loaded by name in these jobs


@functools.cache  # params and provenance ask for most rules' digests more than once
def rule_digest(rule):
    """`code_digest` of a rule's script and the plug-ins its job loads."""
    return code_digest(f"{rule}.py", RULE_PLUGINS.get(rule, ()))


def provenance_settings(rules, size_name=None):
    """What a score or submission records about what made it: model settings, resize (not for
    the input-size score), classes, size and the code digests of `rules` (their scripts).
    """
    settings = {
        "model": MODEL.provenance(),
        "model_packages": list(BACKEND.packages),
        "classes": CLASSES,
    }
    if ENSEMBLE:
        members = [member.model.declaration for member in ENSEMBLE.members]
        settings = {
            "ensemble": ENSEMBLE.provenance(),
            "model_packages": sorted({name for b in members for name in b.packages}),
            "classes": CLASSES,
        }
        rules = [r for rule in rules for r in ENSEMBLE_RULES.get(rule, [rule])]
    if size_name != "input":
        settings["resize"] = {
            key: config["resize"][key] for key in ("backend", "interpolation", "size")
        }
    if size_name is not None:
        settings["size"] = size_name
    settings["code"] = {rule: rule_digest(rule) for rule in rules}
    return settings


# the rules that make an ensemble's results in place of the single model's infer and resize
ENSEMBLE_RULES = {
    "infer": [
        (
            "infer_members"
            if ENSEMBLE and ENSEMBLE.infer_jobs == "shared"
            else "infer_member"
        )
    ],
    "resize": ["resize", "ensemble_combine"],
}


def scored_label_maps(wildcards):
    """The maps a score is computed on: resized to the submission size (an ensemble's
    combined maps), or at input size."""
    maps = LAYOUT.labels if wildcards.size == "input" else SUBMISSION_MAPS
    return [maps(wildcards.split, shard) for shard in SHARDS]


def shard_outputs(maps, split="{split}"):
    """`maps` (a `Layout` method: labels, resized) of every shard of `split`."""
    return [maps(split, shard) for shard in SHARDS]


def fragment_files(split="{split}", shard="{shard}"):
    """{"<format>_fragment": path} of the fragment formats' parts of one shard."""
    return {
        f"{fmt.name}_fragment": LAYOUT.fragment(split, shard, fmt.name)
        for fmt in FRAGMENT_FORMATS
    }


def fragment_inputs(split="{split}"):
    """{"<format>_fragment": paths of every shard} for the submission job."""
    return {
        f"{fmt.name}_fragment": [
            LAYOUT.fragment(split, shard, fmt.name) for shard in SHARDS
        ]
        for fmt in FRAGMENT_FORMATS
    }


RESIZE_SETTINGS = dict(
    backend=config["resize"]["backend"],
    size=config["resize"]["size"],
    interpolation=config["resize"]["interpolation"],
    allow_bilinear_labels=config["resize"]["allow_bilinear_labels"],
)
RESIZE_PARAMS = dict(
    **RESIZE_SETTINGS,
    fragment_formats=[fmt.name for fmt in FRAGMENT_FORMATS],
    class_names=CLASSES,
)  # rule resize's (with its code digest), also the key of the work its infer job does ahead
RESIZE_AHEAD = (
    config["resize"]["ahead"] is not False
    and not PROBABILITY_RESIZE
    and not ENSEMBLE
    and len(FRAGMENT_FORMATS) <= 1
)


def resize_ahead_plan(wildcards, output):
    """Rule infer's `resize_ahead` param: the outputs and params of the shard's resize job
    (segsubmit.ahead.AheadPlan), {} when off. A function of `output`, so that Snakemake's
    params trigger leaves it out: resize settings never rerun inference."""
    if not RESIZE_AHEAD:
        return {}
    split, shard = wildcards.split, wildcards.shard
    return dict(
        resized=LAYOUT.resized(split, shard),
        fragments={
            fmt.name: LAYOUT.fragment(split, shard, fmt.name)
            for fmt in FRAGMENT_FORMATS
        },
        params=dict(**RESIZE_PARAMS, code=rule_digest("resize")),
        mode=config["resize"]["ahead"],
    )


def submission_files(split="{split}"):
    """{format name: path} of the configured submission formats' files of `split`."""
    return {fmt.name: LAYOUT.submission(split, fmt.file_name) for fmt in FORMATS}
