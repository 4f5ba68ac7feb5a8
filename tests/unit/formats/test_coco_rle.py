"""coco_rle: records equal pycocotools' own encoding, the json is decoded back and compared with
the maps before its rename, corrupted copies are refused in one line, options checked."""

import json
import subprocess
import sys

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from pycocotools import mask as mask_utils

from segsubmit.errors import SegsubmitError
from segsubmit.formats.coco_rle import validate_coco_rle
from segsubmit.manifest import Manifest, ManifestEntry
from segsubmit.plugins import format_named
from segsubmit.submission import format_settings
from segsubmit.testing import CLASSES

NAMES = [f"batch_01_vt/{i:04d}.jpg" for i in range(4)]
IDS = (3, 10, 11, 7)  # COCO image ids in manifest order (not sorted)
SIZE = (12, 10)
COCO = format_named("coco_rle")


def random_maps(count=4, size=SIZE, seed=0, high=11):
    maps = np.random.default_rng(seed).integers(0, high, (count, *size), dtype=np.uint8)
    maps[1] = 0  # an all-background image: no record
    maps[2][maps[2] == 4] = 5  # an image without class 4: no record for it
    return maps


def coco_settings(options=None, size=SIZE, image_ids=IDS):
    return format_settings("coco_rle", {"coco_rle": options or {}}, CLASSES, size, None, image_ids)


def write(path, maps, options=None, names=NAMES, image_ids=IDS, size=SIZE):
    settings_ = coco_settings(options, size, image_ids)
    return COCO.write(path, names, lambda: iter(maps), settings_)


def reference_records(maps, image_ids, classes, category_of):
    """pycocotools on each class mask by itself, the way its docs show it."""
    records = []
    for image_id, label_map in zip(image_ids, maps, strict=True):
        for index in classes:
            mask = label_map == index
            if mask.any():
                rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
                counts = rle["counts"].decode("ascii")
                segmentation = {"size": list(rle["size"]), "counts": counts}
                records.append(
                    {
                        "image_id": image_id,
                        "category_id": category_of[index],
                        "segmentation": segmentation,
                    }
                )
    return records


def test_records_equal_pycocotools_and_decode_to_the_maps(tmp_path):
    maps = random_maps()
    summary = write(tmp_path / "s.json", maps)
    records = json.loads((tmp_path / "s.json").read_text())
    assert records == reference_records(maps, IDS, range(1, 11), {i: i for i in range(11)})
    assert summary == {"rows": len(records), "images": 4}
    assert {r["image_id"] for r in records} == {3, 11, 7}  # image 10 is all background
    for record in records:
        position = IDS.index(record["image_id"])
        decoded = mask_utils.decode(
            {**record["segmentation"], "counts": record["segmentation"]["counts"].encode()}
        )
        assert np.array_equal(decoded.astype(bool), maps[position] == record["category_id"])
    assert validate_coco_rle(tmp_path / "s.json", NAMES, coco_settings(), maps)


@settings(max_examples=40, deadline=None)
@given(
    maps=hnp.arrays(
        np.uint8,
        st.tuples(st.integers(1, 3), st.integers(1, 9), st.integers(1, 9)),
        elements=st.integers(0, 10),
    ),
    classes=st.lists(st.sampled_from(CLASSES), min_size=1, max_size=11, unique=True),
    ids=st.permutations(range(1, 100)).map(lambda p: dict(zip(CLASSES, p[:11], strict=True))),
)
def test_any_maps_classes_and_ids_equal_the_reference(tmp_path_factory, maps, classes, ids):
    folder = tmp_path_factory.mktemp("coco")
    names = [f"{i}.jpg" for i in range(len(maps))]
    image_ids = tuple(range(100, 100 + len(maps)))
    options = {"classes": classes, "category_ids": ids}
    write(folder / "s.json", maps, options, names, image_ids, maps.shape[1:])
    indices = [CLASSES.index(name) for name in classes]
    category_of = {CLASSES.index(name): value for name, value in ids.items()}
    expected = reference_records(maps, image_ids, indices, category_of)
    assert json.loads((folder / "s.json").read_text()) == expected
    settings_ = coco_settings(options, maps.shape[1:], image_ids)
    COCO.validate(folder / "s.json", names, settings_)


def edit_records(path, edit):
    records = json.loads(path.read_text())
    path.write_text(json.dumps(edit(records)))


def setitem(records, position, key, value):
    records[position][key] = value
    return records


CORRUPTIONS = [
    (lambda r: {"records": r}, "must be a json list of records, not dict"),
    (lambda r: setitem(r, 0, "image_id", 99), "record 0 image_id 99 is not an image"),
    (lambda r: setitem(r, 0, "image_id", [3]), "record 0 image_id \\[3\\] is not an image"),
    (lambda r: setitem(r, 1, "category_id", 12), "record 1 category_id 12 is not"),
    (lambda r: setitem(r, 0, "score", 1.0), "record 0 must be an object with keys"),
    (lambda r: r[::-1], "is out of order or repeated"),
    (lambda r: [r[0], *r], "record 1 .* out of order or repeated"),
    (
        lambda r: setitem(r, 0, "segmentation", {"size": [10, 12], "counts": "abc"}),
        "RLE size \\[10, 12\\] must be the image's",
    ),
    (
        lambda r: setitem(r, 0, "segmentation", {"size": [12, 10], "counts": [120]}),
        "counts must be a compressed RLE string",
    ),
    (
        lambda r: setitem(r, 0, "segmentation", {"size": [12, 10], "counts": "0"}),
        "record 0 segmentation RLE counts cover",
    ),
]


@pytest.mark.parametrize(("corrupt", "message"), CORRUPTIONS)
def test_a_corrupted_copy_is_refused_in_one_line(tmp_path, corrupt, message):
    write(tmp_path / "s.json", random_maps())
    edit_records(tmp_path / "s.json", corrupt)
    with pytest.raises(SegsubmitError, match=message) as caught:
        COCO.validate(tmp_path / "s.json", NAMES, coco_settings())
    assert "\n" not in str(caught.value)


def test_truncated_json_overlaps_and_changed_pixels_are_refused(tmp_path):
    maps = random_maps()
    write(tmp_path / "s.json", maps)
    path = tmp_path / "s.json"
    text = path.read_text()
    path.write_text(text[: len(text) // 2])
    with pytest.raises(SegsubmitError, match="cannot read as json"):
        COCO.validate(path, NAMES, coco_settings())
    write(path, maps)
    edit_records(path, lambda r: setitem(r, 1, "segmentation", r[0]["segmentation"]))
    with pytest.raises(SegsubmitError, match="record 1 mask of 'Paper' overlaps 'General trash'"):
        COCO.validate(path, NAMES, coco_settings())
    write(path, maps)
    changed = maps.copy()
    changed[0, 0, 0] = (changed[0, 0, 0] + 1) % 11 or 1
    with pytest.raises(SegsubmitError, match="differs from the prediction at 1 pixels|no record"):
        validate_coco_rle(path, NAMES, coco_settings(), changed)
    missing = maps.copy()
    missing[1, 0, 0] = 3  # the all-background image now holds Paper pack
    with pytest.raises(
        SegsubmitError, match="no record for 'batch_01_vt/0001.jpg' class 'Paper pack'"
    ):
        validate_coco_rle(path, NAMES, coco_settings(), missing)


@pytest.mark.parametrize(
    ("section", "message"),
    [
        (
            {"category_ids": {"Paper": 2}},
            "submission.coco_rle.category_ids: no id for 'General trash'",
        ),
        ({"classes": ["Paper"], "category_ids": {"Paper": 2}}, None),
        ({"classes": ["Papers"]}, "submission.coco_rle.classes: 'Papers' not in `classes`"),
        (
            {"category_ids": {name: 5 for name in CLASSES}},
            "submission.coco_rle.category_ids: 'Background' and 'General trash' both map to 5",
        ),
    ],
)
def test_options_that_cannot_work_are_refused_in_one_line(section, message):
    if message is None:
        COCO.check_options(section, CLASSES, [256, 256])
        return
    with pytest.raises(SegsubmitError, match=message) as caught:
        COCO.check_options(section, CLASSES, [256, 256])
    assert "\n" not in str(caught.value)


def test_cli_validates_and_refuses_a_corrupted_copy(tmp_path):
    write(tmp_path / "s.json", random_maps())
    entries = [
        ManifestEntry(i, n, n, SIZE[1], SIZE[0], 0, "0") for i, n in zip(IDS, NAMES, strict=True)
    ]
    Manifest("data", tuple(entries)).save(tmp_path / "manifest.json")
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"resize": {"size": list(SIZE)}}))
    command = [
        sys.executable,
        "-m",
        "segsubmit.cli",
        "validate-submission",
        str(tmp_path / "s.json"),
    ]
    command += [str(tmp_path / "manifest.json"), "--format", "coco_rle", "--config", str(config)]
    ok = subprocess.run(command, capture_output=True, text=True)
    assert ok.returncode == 0 and "(4 images," in ok.stdout
    edit_records(tmp_path / "s.json", lambda r: setitem(r, 2, "image_id", 4))
    bad = subprocess.run(command, capture_output=True, text=True)
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1
    assert "record 2 image_id 4 is not an image of the manifest" in bad.stderr
