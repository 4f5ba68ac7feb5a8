"""Config checks across keys and paths (`check_config`): one line naming the key, before the
DAG is built."""

import json

import pytest
import yaml
from conftest import REPO_ROOT

from segsubmit.config import check_config, default_config, prepare_config
from segsubmit.errors import SegsubmitError
from segsubmit.testing import make_dataset


def user_config(**sections):
    """The default config on user data `data/` (val scored), with `sections` merged in."""
    config = default_config()
    config["data"] = {**config["data"], "root": "data", "splits": ["val"], "score": ["val"]}
    for section, values in sections.items():
        config[section] = {**config[section], **values}
    return config


@pytest.fixture
def workdir(tmp_path):
    make_dataset(tmp_path / "data", {"val": 3})
    (tmp_path / "model.pt").write_bytes(b"weights")
    return tmp_path


def test_user_data_passes(workdir):
    check_config(user_config(model={"weights": "model.pt"}), workdir)


@pytest.mark.parametrize(
    ("sections", "message"),
    [
        ({"model": {"mean": [float("nan"), 0.4, 0.4]}}, r"model.mean\[0\]: must be a finite"),
        ({"model": {"std": [0.2, float("inf"), 0.2]}}, r"model.std\[1\]: must be a finite"),
        ({"resize": {"interpolation": "bilinear"}}, "resize.interpolation: bilinear invents"),
        ({"data": {"splits": ["val", "tset"]}}, "data.coco_json: 'data/tset.json' resolves to"),
        ({"data": {"root": "elsewhere"}}, "data.root: 'elsewhere' resolves to .*/elsewhere"),
        ({"model": {"weights": "missing.pt"}}, "model.weights: 'missing.pt' resolves to"),
    ],
)
def test_bad_values_and_paths_name_the_key(workdir, sections, message):
    with pytest.raises(SegsubmitError, match=message) as error:
        check_config(user_config(**sections), workdir)
    assert "\n" not in str(error.value)


def test_paths_are_shown_resolved_against_the_working_directory(workdir, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    with pytest.raises(SegsubmitError) as error:
        check_config(user_config(), elsewhere)
    assert f"resolves to {elsewhere / 'data'}" in str(error.value)
    assert f"snakemake's working directory {elsewhere}" in str(error.value)
    check_config(user_config(), workdir)


def test_a_scored_split_needs_annotations(workdir):
    coco = json.loads((workdir / "data/val.json").read_text())
    (workdir / "data/val.json").write_text(json.dumps({**coco, "annotations": []}))
    with pytest.raises(SegsubmitError, match="data.score: split 'val' is scored but .* has no "):
        check_config(user_config(), workdir)
    check_config(user_config(data={"score": []}), workdir)


def with_changes(**sections):
    config = default_config()
    for section, values in sections.items():
        config[section] = {**config[section], **values}
    return config


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"data": {"score": ["train"]}}, r"data.score: \['train'\] not in data.splits"),
        ({"model": {"backend": "detectron2"}}, "model.weights: required for backend"),
        ({"data": {"splits": ["holdout"], "score": []}}, "data.splits: the demo dataset"),
        (
            {"model": {"backend": "detectron2", "weights": "w.pth"}},
            "model.detectron2.config_file: the detectron2 backend needs",
        ),
    ],
)
def test_cross_key_checks_name_the_key(changes, message):
    check_config(default_config())
    with pytest.raises(SegsubmitError, match=message):
        check_config(with_changes(**changes))


@pytest.mark.parametrize(
    ("config_text", "expected"),
    [
        (
            "resize: {backend: kornai}",
            "resize.backend: 'kornai' is not one of ['albumentations'",
        ),
        (
            "infer: {batch_sise: 4}",
            "infer: Additional properties are not allowed ('batch_sise'",
        ),
        ("data: {shards: two}", "data.shards: 'two' is not valid"),
        ("model: {backend: onnx}", "model.backend: 'onnx' is not one of ['detectron2', 'mmseg'"),
        ("model: {architecture: fcn_resnet50}", "model.architecture: moved to model.torchvision."),
        ("plugins: [no_such_module]", "plugins: cannot import plug-in module 'no_such_module'"),
        ("submission: {formats: [xml]}", "submission.formats.0: 'xml' is not one of"),
    ],
)
def test_schema_errors_name_the_key_and_allowed_values(config_text, expected):
    config = yaml.safe_load(config_text)
    with pytest.raises(SegsubmitError) as error:
        prepare_config(config)
    assert expected in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("results", "out/{run}", "results: 'out/{run}' contains '{' or '}', which Snakemake"),
        ("data.root", "da{ta", "data.root: 'da{ta' contains"),
        ("data.coco_json", "{split}_{year}.json", r"only \{split\} is replaced"),
        ("data.coco_json", "{split}}.json", "data.coco_json:"),
        ("model.weights", "model{1}.pt", r"model.weights: 'model\{1\}.pt' contains"),
    ],
)
def test_wildcard_braces_in_paths_are_refused(workdir, key, value, message):
    config = user_config(model={"weights": "model.pt"})
    section, _, name = key.rpartition(".")
    (config[section] if section else config)[name] = value
    with pytest.raises(SegsubmitError, match=message) as error:
        check_config(config, workdir)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("results", ["data", "data/results", ".", "./data/../data"])
def test_results_overlapping_the_data_folder_are_refused(workdir, results):
    config = user_config(model={"weights": "model.pt"})
    config["results"] = results
    with pytest.raises(SegsubmitError, match="results: .* overlaps data.root 'data'") as error:
        check_config(config, workdir)
    assert "\n" not in str(error.value)


def test_results_beside_the_data_folder_and_demo_data_inside_results_pass(workdir):
    config = user_config(model={"weights": "model.pt"})
    config["results"] = "data-results"  # a sibling whose name starts like the data folder's
    check_config(config, workdir)
    check_config(default_config(), workdir)  # demo data lives in results/demo by design


def ensemble_config(ensemble, **sections):
    """`user_config` with a validated `ensemble:` section (defaults filled in)."""
    from segsubmit.config import load_schema, validate_config

    config = user_config(model={"weights": "model.pt"}, **sections)
    config["ensemble"] = ensemble
    return validate_config(config, load_schema())


def member(name, weights="model.pt", tta=None, **model):
    return {"name": name, "model": {"weights": weights, **model}, **({"tta": tta} if tta else {})}


def test_without_ensemble_the_section_is_null_and_members_reuse_the_model_schema(workdir):
    from segsubmit.config import load_schema

    schema = load_schema()
    assert default_config(schema)["ensemble"] is None
    properties = schema["properties"]["ensemble"]["properties"]["members"]["items"]["properties"]
    assert properties["model"]["properties"] is schema["properties"]["model"]["properties"]
    tta = schema["properties"]["infer"]["properties"]["tta"]
    assert properties["tta"]["properties"] is tta["properties"]
    config = ensemble_config({"members": [member("a", tta={"flips": ["h"]})]})
    assert config["ensemble"]["method"] == "soft" and config["ensemble"]["csvs"] == []
    assert config["ensemble"]["members"][0]["tta"] == {
        "flips": ["h"], "scales": [1], "merge": "prob_mean"
    }  # fmt: skip
    assert config["ensemble"]["members"][0]["model"]["backend"] == "torchvision"
    check_config(config, workdir)


@pytest.mark.parametrize(
    ("ensemble", "expected"),
    [
        ({"members": [member("a b")]}, "ensemble.members.0.name: 'a b' does not match"),
        ({"members": []}, "ensemble.members: [] should be non-empty"),
        ({"members": [{"name": "a"}]}, "ensemble.members.0: 'model' is a required property"),
        ({"members": [member("a", backend="onnx")]}, "ensemble.members.0.model.backend: 'onnx'"),
        ({"members": [{**member("a"), "weight": 0}]}, "ensemble.members.0.weight: 0 is less"),
        ({"method": "mean", "members": [member("a")]}, "ensemble.method: 'mean' is not one of"),
    ],
)
def test_ensemble_schema_errors_name_the_key(ensemble, expected):
    config = user_config(model={"weights": "model.pt"})
    config["ensemble"] = ensemble
    with pytest.raises(SegsubmitError) as error:
        prepare_config(config)
    assert expected in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("ensemble", "sections", "message"),
    [
        ({"members": [member("a"), member("a")]}, {}, r"ensemble.members\[1\].name: 'a' is used"),
        ({"members": [member("a", "gone.pt")]}, {}, r"ensemble.members\[0\].model.weights: 'gone"),
        (
            {"members": [member("a", None, backend="smp")]},
            {},
            r"ensemble.members\[0\].model.weights: required for backend 'smp'",
        ),
        (
            {"members": [member("a")], "csvs": ["model.pt"]},
            {},
            "ensemble.csvs: only a vote combines submission CSVs",
        ),
        (
            {"method": "vote", "members": [member("a")], "csvs": ["mate.csv"]},
            {},
            r"ensemble.csvs\[0\]: 'mate.csv' resolves to",
        ),
        (
            {"members": [member("a")]},
            {"resize": {"interpolation": "block_max", "size": [32, 32]}},
            "resize.interpolation: 'block_max' with ensemble.method soft",
        ),
        ({"members": [member("a")]}, {"score": {"at_input_size": True}}, "score.at_input_size:"),
        ({"members": [member("a")]}, {"pseudo_labels": {"splits": ["val"]}}, "pseudo_labels.sp"),
        (
            {"method": "vote", "members": [member("a")], "weight_search": {"enabled": True}},
            {},
            "ensemble.weight_search: searches soft-vote weights",
        ),
        (
            {"infer_jobs": "shared", "members": [member("a"), member("b", device="cpu")]},
            {},
            "ensemble.infer_jobs: shared runs every member in one process on one device",
        ),
        (
            {"members": [member("a")], "weight_search": {"enabled": True, "split": "test"}},
            {},
            "ensemble.weight_search.split: 'test' is not a scored split",
        ),
    ],
)
def test_ensemble_cross_key_checks_name_the_key(workdir, ensemble, sections, message):
    with pytest.raises(SegsubmitError, match=message) as error:
        check_config(ensemble_config(ensemble, **sections), workdir)
    assert "\n" not in str(error.value)
    check_config(ensemble_config({"members": [member("a")]}), workdir)


def test_the_documented_ensemble_config_validates():
    from segsubmit.config import load_schema, validate_config

    text = (REPO_ROOT / "docs" / "ensembles.md").read_text().split("## Ensembles\n")[1]
    documented = yaml.safe_load(text.split("```yaml\n")[1].split("```")[0])
    config = validate_config({**user_config(), **documented}, load_schema())
    members = config["ensemble"]["members"]
    assert [m["name"] for m in members] == ["unet_r34", "fpn_r50", "deeplab"]
    assert all(m["tta"] == {"flips": ["h"], "scales": [0.75, 1, 1.25], "merge": "prob_mean"}
               for m in members)  # fmt: skip
