"""data.category_map: a json whose category names differ from `classes` (another dataset,
another language) is mapped by name instead of refused."""

import json

import numpy as np
import pytest

from segsubmit.coco import category_class_index
from segsubmit.config import check_config, default_config
from segsubmit.errors import SegsubmitError
from segsubmit.ground_truth import ground_truth_stage, rasterize_ground_truth
from segsubmit.labels import read_label_shard
from segsubmit.manifest import manifest_stage
from segsubmit.testing import CLASSES, make_dataset

GERMAN = ["Hintergrund", "Restmüll", "Papier", "Papierverpackung", "Metall", "Glas", "Plastik",
          "Styropor", "Plastiktüte", "Batterie", "Kleidung"]  # fmt: skip
GERMAN_TO_CLASSES = dict(zip(GERMAN, CLASSES, strict=True))


def coco_with(names):
    return {"categories": [{"id": 10 + index, "name": name} for index, name in enumerate(names)]}


def test_mapped_names_get_their_class_index():
    mapping = {"Papier": "Paper", "Glas": "Glass"}
    index = category_class_index("x.json", coco_with(["Papier", "Glas", "Metal"]), CLASSES, mapping)
    assert index == {10: CLASSES.index("Paper"), 11: CLASSES.index("Glass"), 12: 4}


def test_a_category_mapped_to_background_is_dropped_to_class_0():
    index = category_class_index("x.json", coco_with(["Karton"]), CLASSES, {"Karton": "Background"})
    assert index == {10: 0}


def test_unmapped_unknown_names_are_refused_naming_the_key():
    with pytest.raises(SegsubmitError, match=r"x.json: categories 'Papier'.*data.category_map"):
        category_class_index("x.json", coco_with(["Papier"]), CLASSES, {"Glas": "Glass"})


def test_config_refuses_a_map_onto_an_unknown_class():
    config = default_config()
    config["data"]["category_map"] = {"Papier": "Papers"}
    with pytest.raises(SegsubmitError, match=r"data.category_map: maps to \['Papers'\]"):
        check_config(config)


def ground_truth_of(root, tmp_path, category_map, name):
    """Manifest, then ground truth at 32x32, of root/val.json; the label maps."""
    manifest = tmp_path / f"{name}_manifest.json"
    manifest_stage(
        root / "val.json", root, CLASSES, manifest, [tmp_path / f"{name}_0.json"], category_map
    )
    truth = tmp_path / f"{name}_truth.npz"
    ground_truth_stage(root / "val.json", manifest, truth, CLASSES, [32, 32], category_map)
    return read_label_shard(truth)[1]


def test_a_german_json_scores_like_the_english_one(tmp_path):
    english = make_dataset(tmp_path / "en", {"val": 4})
    german = make_dataset(tmp_path / "de", {"val": 4}, class_names=GERMAN)
    expected = ground_truth_of(english, tmp_path, None, "en")
    mapped = ground_truth_of(german, tmp_path, GERMAN_TO_CLASSES, "de")
    assert any(truth.any() for truth in expected)
    for want, got in zip(expected, mapped, strict=True):
        np.testing.assert_array_equal(want, got)
    with pytest.raises(SegsubmitError, match="data.category_map"):
        ground_truth_of(german, tmp_path, None, "refused")


def square(annotation_id, category_id, left, top, side):
    polygon = [left, top, left + side, top, left + side, top + side, left, top + side]
    return {"id": annotation_id, "image_id": 1, "category_id": category_id, "iscrowd": 0,
            "segmentation": [polygon], "area": float(side * side)}  # fmt: skip


def test_a_category_mapped_to_background_is_not_drawn_over_the_objects_beneath(tmp_path):
    """Dropping means not rasterized: the Paper square under the small Karton square keeps its
    pixels (painting Karton as background would cut a hole into it)."""
    from pycocotools.coco import COCO

    coco_api = COCO()
    coco_api.dataset = {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 32, "height": 32}],
        "categories": [{"id": 1, "name": "Paper"}, {"id": 2, "name": "Karton"}],
        "annotations": [square(1, 1, 4, 4, 20), square(2, 2, 10, 10, 6)],
    }
    coco_api.createIndex()
    class_of = category_class_index("x.json", coco_api.dataset, CLASSES, {"Karton": "Background"})
    mask = rasterize_ground_truth(coco_api, 1, class_of)
    paper = CLASSES.index("Paper")
    assert (mask[12:14, 12:14] == paper).all() and (mask == paper).sum() > 19 * 19
    assert set(np.unique(mask)) == {0, paper}


def test_a_json_edited_after_the_manifest_is_refused_by_the_ground_truth(tmp_path):
    """Edited between the manifest and the ground truth jobs: one line saying so, not a KeyError
    on an id the manifest never saw."""
    root = make_dataset(tmp_path / "data", {"val": 3})
    manifest = tmp_path / "manifest.json"
    manifest_stage(root / "val.json", root, CLASSES, manifest, [tmp_path / "0.json"])
    coco = json.loads((root / "val.json").read_text())
    coco["images"][0]["id"] = 999
    for annotation in coco["annotations"]:
        annotation["image_id"] = 999 if annotation["image_id"] == 0 else annotation["image_id"]
    (root / "val.json").write_text(json.dumps(coco))
    with pytest.raises(SegsubmitError, match="val.json: changed since the manifest read it") as err:
        ground_truth_stage(root / "val.json", manifest, tmp_path / "t.npz", CLASSES, [32, 32])
    assert "run snakemake again" in str(err.value) and "\n" not in str(err.value)
    # shard files do not record the json: adding an image still reruns only its own shard
    assert json.loads((tmp_path / "0.json").read_text())["json_sha1"] == ""
