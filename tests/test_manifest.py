"""COCO validation and sharding: every bad input gets one line naming the file and the ids."""

import json

import pytest
from conftest import CLASSES, make_dataset

from segsubmit.errors import SegsubmitError
from segsubmit.manifest import build_manifest, shard_of


@pytest.fixture
def dataset(tmp_path):
    return make_dataset(tmp_path / "data", {"val": 6}, size=32)


def edit_json(root, change):
    path = root / "val.json"
    coco = json.loads(path.read_text())
    change(coco)
    path.write_text(json.dumps(coco))
    return path


def build(root):
    return build_manifest(root / "val.json", root, CLASSES, 3)


def test_manifest_keeps_json_order_and_hashes_files(dataset):
    entries = build(dataset)
    coco = json.loads((dataset / "val.json").read_text())
    assert [e["id"] for e in entries] == [i["id"] for i in coco["images"]]
    assert all(len(e["sha1"]) == 40 and e["shard"] == shard_of(e["file_name"], 3) for e in entries)


def test_shard_assignment_is_stable_when_images_are_added():
    names = [f"batch_01_vt/{i:04d}.jpg" for i in range(200)]
    before = {name: shard_of(name, 4) for name in names}
    assert {name: shard_of(name, 4) for name in names + ["new.jpg"]}.items() >= before.items()
    assert set(before.values()) == {0, 1, 2, 3}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: c["images"][1].update(id=c["images"][0]["id"]), "duplicate image ids"),
        (
            lambda c: c["images"][1].update(file_name=c["images"][0]["file_name"]),
            "duplicate file_name",
        ),
        (lambda c: c.update(images=[]), "'images' is missing or empty"),
        (lambda c: c["annotations"][0].update(category_id=99), "category ids 99 "),
        (lambda c: c["annotations"][0].update(image_id=12345), "image ids 12345 "),
        (lambda c: c["categories"].append({"id": 50, "name": "Cardboard"}), "'Cardboard'"),
        (lambda c: c["images"][0].update(file_name="../outside.jpg"), "escapes the data root"),
        (lambda c: c["images"][0].update(file_name="/etc/passwd"), "escapes the data root"),
        (lambda c: c["images"][0].pop("width"), r"images\[0\] lacks width"),
    ],
)
def test_bad_json_is_refused_with_one_line(dataset, change, message):
    json_path = edit_json(dataset, change)
    with pytest.raises(SegsubmitError, match=message) as error:
        build(dataset)
    assert str(json_path) in str(error.value) and "\n" not in str(error.value)


def test_missing_image_names_file_and_json(dataset):
    coco = json.loads((dataset / "val.json").read_text())
    (dataset / coco["images"][2]["file_name"]).unlink()
    with pytest.raises(SegsubmitError, match=coco["images"][2]["file_name"]) as error:
        build(dataset)
    assert "val.json" in str(error.value)


def test_symlink_escaping_the_root_is_refused(dataset, tmp_path):
    coco = json.loads((dataset / "val.json").read_text())
    outside = tmp_path / "outside.jpg"
    (dataset / coco["images"][0]["file_name"]).rename(outside)
    (dataset / coco["images"][0]["file_name"]).symlink_to(outside)
    with pytest.raises(SegsubmitError, match="resolves outside"):
        build(dataset)


def test_not_json_and_missing_json(tmp_path):
    (tmp_path / "val.json").write_text("{not json")
    with pytest.raises(SegsubmitError, match="not valid JSON"):
        build(tmp_path)
    with pytest.raises(SegsubmitError, match="COCO json not found"):
        build_manifest(tmp_path / "nope.json", tmp_path, CLASSES, 2)
