"""Paths and settings shared by the rules (derived from the validated, checked config)."""

from segsubmit.codehash import script_digest
from segsubmit.config import (
    cache_requested,
    check_output_cache,
    shard_count,
    split_json,
    visible_gpu_count,
)
from segsubmit.manifest import image_fingerprint

SCRIPTS_DIR = os.path.join(str(workflow.current_basedir), "..", "scripts")
INFER_ENV = (
    "../../envs/detectron2.yaml"
    if config["model"]["backend"] == "detectron2"
    else "../../envs/torch.yaml"
)
RESULTS = config["results"]
THREADS = config["threads"]
# `--cache`: shard predictions are shared between checkouts through $SNAKEMAKE_OUTPUT_CACHE.
INFER_CACHED = cache_requested(workflow.workflow_settings.cache, "infer")
if INFER_CACHED:
    check_output_cache(os.environ)


def code_digest(script):
    """Digest of the package modules `workflow/scripts/<script>` reaches through its imports:
    editing any of them reruns the rule, editing any other module does not."""
    return script_digest(os.path.join(SCRIPTS_DIR, script))


def result(path):
    """`path` under the configured results folder."""
    return os.path.join(RESULTS, path)


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
DEMO_ROOT = result("demo/data")
DATA_ROOT = DEMO_ROOT if USE_DEMO_DATA else config["data"]["root"]
WEIGHTS = result("demo/model.pt") if USE_DEMO_MODEL else config["model"]["weights"]


wildcard_constraints:
    split="|".join(SPLITS),
    size=r"input|\d+x\d+",
    shard=r"\d+",


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
        else image_fingerprint(coco_json(wildcards.split), DATA_ROOT)
    )


def model_inputs(wildcards):
    """Model files: weights, plus the detectron2 config file when used."""
    inputs = {"weights": WEIGHTS}
    if config["model"]["config_file"]:
        inputs["model_config"] = config["model"]["config_file"]
    return inputs


def parse_size_name(size_name):
    """'256x256' -> [256, 256]; 'input' -> None (the images' own size)."""
    return None if size_name == "input" else [int(v) for v in size_name.split("x")]


def benchmark_path(rule_name, pattern):
    """Snakemake's per-job benchmark file (wall time, memory) of a rule's job."""
    return result(f"benchmarks/{rule_name}/{pattern}.tsv")


def log_path(rule_name, pattern):
    """Log file of a rule's job."""
    return result(f"logs/{rule_name}/{pattern}.log")


def model_provenance():
    """The model settings that decide the predictions (for `provenance` params)."""
    model, infer = config["model"], config["infer"]
    backend = model["backend"]
    settings = {
        "backend": backend,
        "weights": WEIGHTS,
        "device": model["device"],
        "precision": infer["precision"],
        "channels_last": infer["channels_last"],
    }
    if backend == "detectron2":
        settings.update(config_file=model["config_file"], opts=model["opts"])
    else:
        settings.update(mean=model["mean"], std=model["std"])
    if backend == "torchvision":
        settings["architecture"] = model["architecture"]
    return settings


def provenance_settings(rules, size_name=None):
    """What a score or submission records about what made it: model settings, resize (not for
    the input-size score), classes, size and the code digests of `rules` (their scripts).
    """
    settings = {"model": model_provenance(), "classes": CLASSES}
    if size_name != "input":
        settings["resize"] = {
            key: config["resize"][key] for key in ("backend", "interpolation", "size")
        }
    if size_name is not None:
        settings["size"] = size_name
    settings["code"] = {rule: code_digest(f"{rule}.py") for rule in rules}
    return settings


def scored_label_maps(wildcards):
    """The maps a score is computed on: resized to the submission size, or at input size."""
    folder = "labels" if wildcards.size == "input" else "resized"
    return expand(result(f"{wildcards.split}/{folder}/{{shard}}.npz"), shard=SHARDS)
