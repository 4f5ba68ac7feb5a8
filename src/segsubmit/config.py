"""The configuration: its schema (the one source of every key, default and description), the
documents generated from it, and the checks across keys that a schema cannot express."""

import json
import math
import os
from pathlib import Path

import yaml

from .coco import read_json_or_none
from .errors import SegsubmitError
from .gpus import visible_gpu_ids
from .plugins import (
    BACKENDS,
    FORMATS,
    PLUGINS_VARIABLE,
    backend_named,
    format_named,
    load_plugins,
)

SCHEMA_PATH = Path(__file__).with_name("config.schema.yaml")
DEMO_SPLITS = ("train", "val", "test")
CPU_SHARDS = 4  # `data.shards: auto` without a GPU


def plugin_section(plugin, kind):
    """The schema of a plug-in's own config section (`model.<backend>`, `submission.<format>`)."""
    return {
        "type": "object",
        "additionalProperties": False,
        "default": {},
        "description": f"settings of the {plugin.name} {kind}",
        "properties": plugin.options,
    }


# libyaml's loader where PyYAML has it: the same data, parsed ~10x faster at every start
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_schema(path=SCHEMA_PATH, plugin_modules=()):
    """The config schema as a dict: the file, with the registered backends and submission
    formats (built-in ones, installed ones and `plugin_modules`) merged in: their names as the
    choices of `model.backend` and `submission.formats`, their options as their sections; an
    ensemble member's `model` and `tta` are the `model` and `infer.tta` sections' schemas."""
    schema = yaml.load(Path(path).read_text(encoding="utf-8"), Loader=SAFE_LOADER)
    load_plugins(plugin_modules)
    model = schema["properties"]["model"]["properties"]
    model["backend"]["enum"] = sorted(BACKENDS)
    for name, backend in sorted(BACKENDS.items()):
        model[name] = plugin_section(backend, "backend")
    submission = schema["properties"]["submission"]["properties"]
    submission["formats"]["items"]["enum"] = sorted(FORMATS)
    for name, submission_format in sorted(FORMATS.items()):
        if submission_format.options:
            submission[name] = plugin_section(submission_format, "submission format")
    member = schema["properties"]["ensemble"]["properties"]["members"]["items"]["properties"]
    sections = {"model": schema["properties"]["model"]}  # one definition each: the same
    sections["tta"] = schema["properties"]["infer"]["properties"]["tta"]  # dicts, reused
    for name, section in sections.items():
        member[name] = {**section, "description": member[name]["description"]}
    return schema


MOVED_KEYS = {  # keys of earlier releases -> where they are now
    ("model", "architecture"): "model.torchvision.architecture",
    ("model", "config_file"): "model.detectron2.config_file",
    ("model", "opts"): "model.detectron2.opts",
}


def validation_error_line(error):
    """A jsonschema error as one line naming the key (`model.backend: 'onnx' is not one of
    [...]`)."""
    key = ".".join(str(part) for part in error.absolute_path) or "config"
    return f"{key}: {error.message}"


def validate_config(config, schema):
    """Check `config` against `schema` (JSON Schema 2020-12), filling in every default, as
    Snakemake's `validate` does; the first problem as one line naming its key."""
    import jsonschema

    for (section, key), new_key in MOVED_KEYS.items():
        if isinstance(config.get(section), dict) and key in config[section]:
            raise SegsubmitError(f"{section}.{key}: moved to {new_key}; rename it there")
    validator_class = jsonschema.Draft202012Validator
    check_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, subschema):
        for name, property_schema in properties.items():
            if isinstance(instance, dict) and "default" in property_schema:
                instance.setdefault(name, property_schema["default"])
        yield from check_properties(validator, properties, instance, subschema)

    validator = jsonschema.validators.extend(validator_class, {"properties": set_defaults})
    error = jsonschema.exceptions.best_match(validator(schema).iter_errors(config))
    if error is not None:
        raise SegsubmitError(f"config: {validation_error_line(error)}")
    return config


def schema_keys(schema, prefix=""):
    """(dotted key, subschema) of every leaf key, in schema order; sections (objects whose
    default is `{}`) are walked into."""
    for name, subschema in schema.get("properties", {}).items():
        key = f"{prefix}{name}"
        if subschema.get("default") == {} and "properties" in subschema:
            yield from schema_keys(subschema, f"{key}.")
        else:
            yield key, subschema


def default_config(schema=None):
    """The configuration every default of the schema gives (nested dicts)."""
    schema = schema or load_schema()
    config = {}
    for key, subschema in schema_keys(schema):
        *sections, name = key.split(".")
        target = config
        for section in sections:
            target = target.setdefault(section, {})
        target[name] = subschema["default"]
    return config


def format_value(value):
    """A default as it is written in YAML flow style (`null`, `[test, val]`, `"{split}.json"`)."""
    text = json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | dict):
        text = yaml.safe_dump(
            value, default_flow_style=True, allow_unicode=True, sort_keys=False
        ).strip()
    return text if isinstance(value, str) and "{" in value else text.strip('"')


CHOICES_FROM_PLUGINS = ("model.backend", "submission.formats")


def config_table(schema=None):
    """The markdown key table of config/README.md."""
    schema = schema or load_schema()
    rows = ["| key | default | meaning |", "| --- | --- | --- |"]
    for key, subschema in schema_keys(schema):
        default = subschema["default"]
        shown = "the competition's 11" if key == "classes" else f"`{format_value(default)}`"
        meaning = " ".join(subschema["description"].split()).replace("|", "\\|")
        choices = subschema.get("enum") or subschema.get("items", {}).get("enum")
        if key in CHOICES_FROM_PLUGINS:
            meaning += f" (registered: {', '.join(choices)})"
        rows.append(f"| `{key}` | {shown} | {meaning} |")
    return "\n".join(rows) + "\n"


def default_config_yaml(schema=None):
    """config/config.yaml: every key at its default, each with its description as a comment;
    a plug-in's section is nested in its parent's (`model:` -> `  torchvision:`)."""
    schema = schema or load_schema()
    lines = [
        "# segsubmit configuration: every key at its default. Generated from",
        "# src/segsubmit/config.schema.yaml and the plug-ins' options by",
        "# `segsubmit config-docs --write`; do not edit by hand. Override keys with",
        "# --configfile my.yaml (see config/README.md).",
    ]
    open_sections = []
    for key, subschema in schema_keys(schema):
        *sections, name = key.split(".")
        shared = 0
        while shared < min(len(sections), len(open_sections)) and (
            sections[shared] == open_sections[shared]
        ):
            shared += 1
        if not sections or shared < len(open_sections) or not open_sections:
            lines.append("")
        for depth in range(shared, len(sections)):
            lines.append(f"{'  ' * depth}{sections[depth]}:")
        open_sections = sections
        indent = "  " * len(sections)
        for comment in wrap_comment(subschema["description"], 100 - len(indent) - 2):
            lines.append(f"{indent}# {comment}")
        if key == "classes":
            lines.append("classes:")
            lines += [f"  - {name}" for name in subschema["default"]]
        else:
            lines.append(f"{indent}{name}: {format_value(subschema['default'])}")
    return "\n".join(lines) + "\n"


def wrap_comment(text, width):
    """`text` (whitespace collapsed) as lines of at most `width` characters."""
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return [*lines, line] if line else lines


YAML_TYPES = {"integer": (int,), "number": (int, float), "boolean": (bool,)}


def allowed_types(subschema):
    """JSON types a subschema allows (its `type`, and those of its oneOf/anyOf branches)."""
    types = subschema.get("type", [])
    types = {types} if isinstance(types, str) else set(types)
    for branch in subschema.get("oneOf", []) + subschema.get("anyOf", []):
        types |= allowed_types(branch)
    return types


def coerce_value(value, subschema):
    """`value` with strings turned into the number or boolean the schema expects there."""
    types = allowed_types(subschema)
    if isinstance(value, str) and "string" not in types:
        parsed = yaml.safe_load(value) if value.strip() else value
        for json_type in types & YAML_TYPES.keys():
            wanted = YAML_TYPES[json_type]
            if isinstance(parsed, wanted) and (json_type == "boolean") == isinstance(parsed, bool):
                return parsed
        return value
    if isinstance(value, list) and "items" in subschema:
        return [coerce_value(item, subschema["items"]) for item in value]
    if isinstance(value, dict) and "properties" in subschema:
        properties = subschema["properties"]
        return {
            key: coerce_value(item, properties[key]) if key in properties else item
            for key, item in value.items()
        }
    return value


def coerce_config(config, schema=None):
    """Snakemake's `--config key={...}` reads everything inside a mapping or list as strings
    (`data={shards: 2}` gives '2'): turn such strings into the numbers and booleans the schema
    expects, in place, before validation."""
    schema = schema or load_schema()
    config.update(coerce_value(dict(config), schema))
    return config


def nonfinite_keys(value, key=""):
    """Dotted keys (with list positions) of every NaN or infinite number in `value`."""
    if isinstance(value, dict):
        return [k for name, item in value.items() for k in nonfinite_keys(item, f"{key}.{name}")]
    if isinstance(value, list):
        return [k for i, item in enumerate(value) for k in nonfinite_keys(item, f"{key}[{i}]")]
    if isinstance(value, float) and not math.isfinite(value):
        return [key.lstrip(".")]
    return []


def existing_path(key, value, workdir, kind="file"):
    """`value` resolved against the working directory; one line showing the resolved path when
    it is not an existing file (or folder)."""
    path = Path(workdir, value).resolve()
    if not (path.is_dir() if kind == "folder" else path.is_file()):
        raise SegsubmitError(
            f"{key}: {value!r} resolves to {path}, which is not an existing {kind} (relative "
            f"paths are read from snakemake's working directory {Path(workdir).resolve()}, its "
            "--directory); fix the path or run from that folder"
        )
    return path


def split_json(config, split):
    """A split's COCO json as configured (relative to the working directory)."""
    return os.path.join(config["data"]["root"], config["data"]["coco_json"].format(split=split))


def has_annotations(json_path):
    """Whether a COCO json lists at least one annotation (unreadable jsons pass: the manifest
    says what is wrong with them)."""
    coco = read_json_or_none(json_path)
    return not isinstance(coco, dict) or bool(coco.get("annotations", []))


def brace_problem(key, value, allowed=()):
    """One line when a path setting holds `{` or `}` beyond the `allowed` placeholders: Snakemake
    reads them as wildcards in the paths built from it (a KeyError or WildcardError otherwise)."""
    rest = str(value)
    for placeholder in allowed:
        rest = rest.replace(placeholder, "")
    if "{" in rest or "}" in rest:
        only = f" (only {', '.join(allowed)} is replaced)" if allowed else ""
        raise SegsubmitError(
            f"{key}: {value!r} contains '{{' or '}}', which Snakemake reads as a wildcard{only}; "
            "rename the folder or file"
        )


def check_braces(config):
    """Path settings that reach Snakemake's rules hold no wildcard braces but `{split}` (a
    model's weights: `check_model`)."""
    brace_problem("results", config["results"])
    if config["data"]["root"] is not None:
        brace_problem("data.root", config["data"]["root"])
    brace_problem("data.coco_json", config["data"]["coco_json"], ("{split}",))
    if config["data"]["masks"]["folder"] is not None:
        brace_problem("data.masks.folder", config["data"]["masks"]["folder"], ("{split}",))


def check_no_overlap(config, workdir):
    """The results folder and the data folder are apart: neither is the other or inside it (a run
    would write over, or delete, input images)."""
    if config["data"]["root"] is None:  # the demo data is built inside results by design
        return
    results = Path(workdir, config["results"]).resolve()
    root = Path(workdir, config["data"]["root"]).resolve()
    if results == root or results.is_relative_to(root) or root.is_relative_to(results):
        raise SegsubmitError(
            f"results: {config['results']!r} ({results}) overlaps data.root "
            f"{config['data']['root']!r} ({root}); outputs would be written among the input "
            "images: choose a results folder outside data.root (and not holding it)"
        )


def mask_folder(config, split):
    """A split's folder of label PNGs (relative to the working directory), or None when the
    ground truth is the json's annotations."""
    folder = config["data"]["masks"]["folder"]
    if folder is None:
        return None
    return os.path.join(config["data"]["root"], folder.format(split=split))


def check_paths(config, workdir):
    """User files exist where the config points, resolved against `workdir` (demo data and the
    demo model are built by the workflow); scored splits' jsons hold annotations, or their
    label-PNG folders exist (the model's files: `check_model`)."""
    if config["data"]["root"] is not None:
        existing_path("data.root", config["data"]["root"], workdir, "folder")
        for split in config["data"]["splits"]:
            json_path = existing_path("data.coco_json", split_json(config, split), workdir)
            masks = mask_folder(config, split)
            if split in config["data"]["score"] and masks is not None:
                existing_path("data.masks.folder", masks, workdir, "folder")
            elif split in config["data"]["score"] and not has_annotations(json_path):
                raise SegsubmitError(
                    f"data.score: split {split!r} is scored but {json_path} has no annotations "
                    "(its mIoU would be against all-background truth); remove it from data.score"
                )


def check_config(config, workdir=None):
    """Checks across keys, on a schema-validated config: one-line error naming the key. Paths
    are checked against `workdir` (default: the current folder, snakemake's --directory)."""
    bad_numbers = nonfinite_keys(config)
    if bad_numbers:
        raise SegsubmitError(f"{bad_numbers[0]}: must be a finite number, not NaN or infinity")
    from .resize import check_interpolation  # the resize jobs' own check, before any job runs

    check_interpolation(
        config["resize"]["interpolation"], config["resize"]["allow_bilinear_labels"]
    )
    splits, scored = list(config["data"]["splits"]), config["data"]["score"]
    unknown_scored = sorted(set(scored) - set(splits))
    if unknown_scored:
        raise SegsubmitError(
            f"data.score: {unknown_scored} not in data.splits {splits}; list only configured splits"
        )
    if config["data"]["root"] is None and not set(splits) <= set(DEMO_SPLITS):
        raise SegsubmitError(
            f"data.splits: the demo dataset has splits {'/'.join(DEMO_SPLITS)}, not {splits}; "
            "set data.root to use your own data"
        )
    unknown_pseudo = sorted(set(config["pseudo_labels"]["splits"]) - set(splits))
    if unknown_pseudo:
        raise SegsubmitError(
            f"pseudo_labels.splits: {unknown_pseudo} not in data.splits {splits}; list only "
            "configured splits"
        )
    unknown_targets = sorted(set(config["data"]["category_map"].values()) - set(config["classes"]))
    if unknown_targets:
        raise SegsubmitError(
            f"data.category_map: maps to {unknown_targets}, which `classes` does not list"
        )
    check_masks(config)
    if config["ensemble"] is None:  # an ensemble's members: check_ensemble
        check_probability_settings(config, backend_named(config["model"]["backend"]))
    for name in config["submission"]["formats"]:
        format_named(name).check_options(
            config["submission"].get(name, {}), config["classes"], config["resize"]["size"]
        )
    workdir = os.getcwd() if workdir is None else workdir
    check_braces(config)
    check_paths(config, workdir)
    check_block_max(config, workdir)
    check_no_overlap(config, workdir)
    if config["ensemble"] is None:
        check_model("model", config["model"], workdir)
    else:  # the members' models make the results: the model section is not used
        check_ensemble(config, workdir)


def check_model(key, model, workdir):
    """A model section (`key`: its config key, `model` or an ensemble member's): weights given
    unless the backend trains the demo model, the backend's options, existing files."""
    backend = backend_named(model["backend"])
    if model["weights"] is None and not backend.trains_demo_model:
        demo_backends = sorted(name for name, b in BACKENDS.items() if b.trains_demo_model)
        raise SegsubmitError(
            f"{key}.weights: required for backend {backend.name!r} (the demo model is "
            f"{'/'.join(demo_backends)})"
        )
    backend.check_options(model[backend.name])
    if model["weights"]:
        brace_problem(f"{key}.weights", model["weights"])
        existing_path(f"{key}.weights", model["weights"], workdir, backend.weights_kind)
    for option in backend.file_options:
        if model[backend.name][option]:
            existing_path(f"{key}.{backend.name}.{option}", model[backend.name][option], workdir)


def check_ensemble(config, workdir):
    """`ensemble:` across keys: unique member names, usable member models, csvs only for a
    vote, and the settings an ensemble cannot honour refused (one line naming the key)."""
    section, seen = config["ensemble"], set()
    for index, member in enumerate(section["members"]):
        key = f"ensemble.members[{index}]"
        if member["name"] in seen:
            raise SegsubmitError(f"{key}.name: {member['name']!r} is used twice; names are unique")
        seen.add(member["name"])
        check_model(f"{key}.model", member["model"], workdir)
    devices = {member["model"]["device"] for member in section["members"]}
    if section["infer_jobs"] == "shared" and len(devices) > 1:
        raise SegsubmitError(
            f"ensemble.infer_jobs: shared runs every member in one process on one device, but "
            f"the members' model.device differ ({', '.join(sorted(map(str, devices)))}); give "
            "them one device or use infer_jobs: per_member"
        )
    if section["csvs"] and section["method"] != "vote":
        raise SegsubmitError(
            "ensemble.csvs: only a vote combines submission CSVs (they hold no probabilities); "
            "set ensemble.method: vote or remove the csvs"
        )
    for index, csv_path in enumerate(section["csvs"]):
        brace_problem(f"ensemble.csvs[{index}]", csv_path)
        existing_path(f"ensemble.csvs[{index}]", csv_path, workdir)
    if config["resize"]["interpolation"] == "probability":
        raise SegsubmitError(
            "resize.interpolation: probability is a single model's (its infer job averages the "
            "probabilities at the images' size); an ensemble's members are resized with nearest"
        )
    if section["method"] == "soft" and config["resize"]["interpolation"] != "nearest":
        raise SegsubmitError(
            f"resize.interpolation: {config['resize']['interpolation']!r} with ensemble.method "
            "soft, whose member probabilities are sampled at the nearest-resize pixels; use "
            "nearest, or ensemble.method: vote"
        )
    if config["score"]["at_input_size"]:
        raise SegsubmitError(
            "score.at_input_size: an ensemble has maps at the submission size only; set it false"
        )
    if config["pseudo_labels"]["splits"]:
        raise SegsubmitError(
            "pseudo_labels.splits: exported from a single model's maps, not an ensemble's; "
            "remove them (or run the single model)"
        )
    search = section["weight_search"]
    if search["enabled"]:
        if section["method"] != "soft":
            raise SegsubmitError(
                "ensemble.weight_search: searches soft-vote weights; set ensemble.method: soft"
            )
        split = search["split"] or next(iter(config["data"]["score"]), None)
        if split not in config["data"]["score"]:
            raise SegsubmitError(
                f"ensemble.weight_search.split: {split!r} is not a scored split "
                f"({config['data']['score']}); name one of data.score"
            )


def check_probability_settings(config, backend):
    """resize.interpolation: probability and pseudo_labels.threshold need a backend whose
    predictor gives class probabilities; the pseudo-labels' ignore label is no class's."""
    wanted = [
        key
        for key, asked in (
            (
                "resize.interpolation: probability",
                config["resize"]["interpolation"] == "probability",
            ),
            ("pseudo_labels.threshold", config["pseudo_labels"]["threshold"] > 0),
        )
        if asked
    ]
    if wanted and not backend.probabilities:
        raise SegsubmitError(
            f"{wanted[0]}: model.backend {backend.name} gives no class probabilities (its "
            "predictor yields labels only); use a backend that does, or drop the setting"
        )
    classes, ignore_index = config["classes"], config["pseudo_labels"]["ignore_index"]
    if config["pseudo_labels"]["threshold"] > 0 and ignore_index < len(classes):
        raise SegsubmitError(
            f"pseudo_labels.ignore_index: {ignore_index} is the class {classes[ignore_index]!r}; "
            f"choose a value from {len(classes)} to 255 (e.g. 255)"
        )


def image_sizes(config, workdir):
    """{(height, width): (json path, file_name)} of the first image of each size the splits'
    jsons list (the demo data: demo.image_size); records the manifest would refuse are left to
    it."""
    if config["data"]["root"] is None:
        side = config["demo"]["image_size"]
        return {(side, side): ("demo.image_size", "")}
    sizes = {}
    for split in config["data"]["splits"]:
        json_path = Path(workdir, split_json(config, split))
        coco = read_json_or_none(json_path)
        images = coco.get("images") if isinstance(coco, dict) else None
        for image in images if isinstance(images, list) else []:
            size = isinstance(image, dict) and (image.get("height"), image.get("width"))
            if size and all(type(v) is int and v > 0 for v in size):  # not bools either
                sizes.setdefault(size, (json_path, image.get("file_name")))
    return sizes


def check_block_max(config, workdir):
    """resize.interpolation: block_max needs every image's sides to be whole multiples of
    resize.size: refused from the jsons' sizes before any job runs."""
    if config["resize"]["interpolation"] != "block_max":
        return
    from .resize import block_factors

    for shape, (where, file_name) in image_sizes(config, workdir).items():
        try:
            block_factors(shape, config["resize"]["size"])
        except SegsubmitError as error:
            image = f", {file_name!r}" if file_name else ""
            raise SegsubmitError(f"{error} ({where}{image})") from None


def check_masks(config):
    """Label-PNG ground truth needs your own data and a usable id map."""
    from .formats.options import check_id_map

    masks = config["data"]["masks"]
    if masks["folder"] is None:
        return
    if config["data"]["root"] is None:
        raise SegsubmitError(
            "data.masks.folder: needs data.root (the demo dataset's ground truth is its json's "
            "annotations); set data.root or drop data.masks"
        )
    check_id_map("data.masks.label_ids", masks["label_ids"], config["classes"], ())


def prepare_config(config, workdir=None):
    """The Snakefile's start: import the config's `plugins` (and name them to the jobs in
    $SEGSUBMIT_PLUGINS), build the schema, turn
    `--config` strings into numbers, validate (defaults filled in) and check across keys; one
    line naming the key for the first problem."""
    plugins = config.get("plugins", [])
    plugins = [str(name) for name in plugins] if isinstance(plugins, list) else []
    schema = load_schema(plugin_modules=plugins)
    os.environ[PLUGINS_VARIABLE] = ",".join(plugins)  # for the jobs
    coerce_config(config, schema)
    validate_config(config, schema)
    check_config(config, workdir)
    return config


OUTPUT_CACHE_VARIABLE = "SNAKEMAKE_OUTPUT_CACHE"


def cache_requested(cache_rules, rule):
    """Whether this run's `--cache` (Snakemake's `workflow_settings.cache`: None without the
    flag, [] for every eligible rule, else the named rules) covers `rule`."""
    return cache_rules is not None and (not cache_rules or rule in cache_rules)


def check_output_cache(environ):
    """`--cache` needs `$SNAKEMAKE_OUTPUT_CACHE`, an existing folder (Snakemake itself only
    warns, then fails at the first cached job)."""
    location = environ.get(OUTPUT_CACHE_VARIABLE)
    if not location:
        raise SegsubmitError(
            f"--cache: set {OUTPUT_CACHE_VARIABLE} to a folder shared by everyone who reuses "
            "predictions, e.g. export SNAKEMAKE_OUTPUT_CACHE=/shared/segsubmit-cache"
        )
    if not Path(location).is_dir():
        raise SegsubmitError(
            f"{OUTPUT_CACHE_VARIABLE}={location}: not a folder; create it (writable by the team)"
        )


TABLE_START, TABLE_END = "<!-- keys: generated from the schema -->", "<!-- end of keys -->"


def with_config_table(readme_text, schema=None):
    """config/README.md's text with the part between the table markers regenerated."""
    before, start, rest = readme_text.partition(TABLE_START)
    _, end, after = rest.partition(TABLE_END)
    if not (start and end):
        raise SegsubmitError(f"config/README.md: markers {TABLE_START} ... {TABLE_END} missing")
    return f"{before}{TABLE_START}\n{config_table(schema)}{TABLE_END}{after}"


def visible_gpu_count(environ=os.environ, driver_dir="/proc/driver/nvidia/gpus"):
    """GPUs this process may use, without importing torch or initialising CUDA (the ids the
    infer jobs claim among: `gpus.visible_gpu_ids`)."""
    return len(visible_gpu_ids(environ, driver_dir))


def shard_count(shards, device, gpu_count):
    """`data.shards` as a number: `auto` gives one shard per GPU when the model runs on CUDA
    (`model.device` auto or cuda; one for an explicit cuda:N), else `CPU_SHARDS`."""
    if shards != "auto":
        return shards
    if device == "cpu" or gpu_count == 0:
        return CPU_SHARDS
    return 1 if device.startswith("cuda:") else gpu_count
