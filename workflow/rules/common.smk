"""Paths and settings shared by the rules (derived from the validated config)."""

from segsubmit.codehash import source_digest
from segsubmit.errors import SegsubmitError
from segsubmit.manifest import listed_image_files

INFER_ENV = (
    "../../envs/detectron2.yaml"
    if config["model"]["backend"] == "detectron2"
    else "../../envs/torch.yaml"
)
RESULTS = config["results"]


def code_version(*modules):
    """Digest of the package modules a rule runs, always with the stage entry points
    (stages.py, logs.py) that its script calls: editing any of them reruns the rule."""
    return source_digest("stages.py", "logs.py", *modules)


def result(path):
    """`path` under the configured results folder."""
    return os.path.join(RESULTS, path)


CLASSES = config["classes"]
SUBMISSION_SIZE = "{}x{}".format(*config["resize"]["size"])
SPLITS = list(config["data"]["splits"])
SCORED_SPLITS = config["data"]["score"]
SHARDS = list(range(config["data"]["shards"]))
USE_DEMO_DATA = config["data"]["root"] is None
USE_DEMO_MODEL = config["model"]["weights"] is None
DEMO_ROOT = result("demo/data")
DATA_ROOT = DEMO_ROOT if USE_DEMO_DATA else config["data"]["root"]
WEIGHTS = result("demo/model.pt") if USE_DEMO_MODEL else config["model"]["weights"]

unknown_scored = sorted(set(SCORED_SPLITS) - set(SPLITS))
if unknown_scored:
    raise SegsubmitError(
        f"data.score: {unknown_scored} not in data.splits {SPLITS}; list only configured splits"
    )
if USE_DEMO_MODEL and config["model"]["backend"] != "torchvision":
    raise SegsubmitError(
        "model.weights: required for backend "
        f"{config['model']['backend']!r} (the demo model is torchvision)"
    )
if USE_DEMO_DATA and not set(SPLITS) <= {"train", "val", "test"}:
    raise SegsubmitError(
        f"data.splits: the demo dataset has splits train/val/test, not {SPLITS}; "
        "set data.root to use your own data"
    )
if config["model"]["backend"] == "detectron2" and not config["model"]["config_file"]:
    raise SegsubmitError(
        "model.config_file: the detectron2 backend needs the model's config.yaml"
    )


wildcard_constraints:
    split="|".join(SPLITS),
    size=r"input|\d+x\d+",
    shard=r"\d+",


def coco_json(split):
    """The COCO json of a split (under the demo data root when no data is configured)."""
    if USE_DEMO_DATA:
        return f"{DEMO_ROOT}/{split}.json"
    return os.path.join(DATA_ROOT, config["data"]["coco_json"].format(split=split))


def dataset_inputs(wildcards):
    """What a split's manifest/score depends on: the json (or the generated demo data)."""
    if USE_DEMO_DATA:
        return {"data": DEMO_ROOT}
    coco = coco_json(wildcards.split)
    return {"coco": coco, "images": listed_image_files(coco, DATA_ROOT)}


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
