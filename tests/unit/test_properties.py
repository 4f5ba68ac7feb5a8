"""Properties of the pipeline run in-process through the real stage entries:

- any valid COCO manifest (odd sizes, unicode names, many or empty shards) goes through
  manifest -> resize -> submission -> validator without an invalid CSV or a crash;
- any malformed COCO json (wrong types, non-finite numbers, degenerate polygons, duplicate and
  look-alike names, missing keys) is either refused by the manifest with one SegsubmitError line
  naming the json, or goes through every later stage (ground truth, score, submission) without
  an error: nothing fails after the manifest.
"""

import contextlib
import json
import math
import unicodedata

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from segsubmit.config import has_annotations
from segsubmit.errors import SegsubmitError
from segsubmit.ground_truth import ground_truth_stage
from segsubmit.labels import write_label_shard
from segsubmit.manifest import Manifest, manifest_stage
from segsubmit.metrics import score_stage
from segsubmit.resize import resize_stage
from segsubmit.submission import submission_stage, validate_file
from segsubmit.testing import CLASSES

NAME_CHARACTERS = st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="/\\{}*?[]")
FILE_NAMES = st.text(NAME_CHARACTERS, min_size=1, max_size=12).filter(
    lambda name: name not in (".", "..") and name == name.strip() and len(name.encode()) < 200
)
IMAGES = st.lists(
    st.tuples(FILE_NAMES, st.integers(1, 37), st.integers(1, 37)),
    min_size=1,
    max_size=12,
    unique_by=lambda image: unicodedata.normalize("NFC", image[0]).casefold(),
)
FUZZ = settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@FUZZ
@given(
    images=IMAGES,
    shard_count=st.integers(1, 9),
    out_size=st.tuples(st.integers(1, 20), st.integers(1, 20)),
    backend=st.sampled_from(["albumentations", "kornia"]),
    seed=st.integers(0, 99),
)
def test_pipeline_always_gives_a_valid_csv(
    tmp_path_factory, images, shard_count, out_size, backend, seed
):
    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(seed)
    coco = {"images": [], "categories": [{"id": 1, "name": "Paper"}], "annotations": []}
    for image_id, (name, height, width) in enumerate(images):
        file_name = f"d/{name}.png"
        (root / "d").mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (height, width, 3), np.uint8)).save(root / file_name)
        coco["images"].append(
            {"id": image_id * 7 + 3, "file_name": file_name, "width": width, "height": height}
        )
    (root / "val.json").write_text(json.dumps(coco, ensure_ascii=False), encoding="utf-8")
    out = tmp_path_factory.mktemp("results")
    shard_paths = [out / f"shards/{k}.json" for k in range(shard_count)]
    manifest_stage(root / "val.json", root, CLASSES, out / "manifest.json", shard_paths)
    resized_paths = [
        fake_infer_and_resize(out, shard_path, rng, backend, list(out_size))
        for shard_path in shard_paths
    ]
    csv_path = out / "submission.csv"
    submission_stage(out / "manifest.json", resized_paths, {"competition_csv": csv_path},
                     out / "valid.json", CLASSES, list(out_size))  # fmt: skip
    assert json.loads((out / "valid.json").read_text())["rows"] == len(images)
    rows = validate_file(csv_path, out / "manifest.json", "competition_csv", CLASSES, out_size)
    assert rows == {"rows": len(images)}


def fake_infer_and_resize(out, shard_path, rng, backend, size):
    """The infer stage's output for a shard (random maps at the entries' sizes), resized by the
    real resize stage; the resized shard's path."""
    entries = Manifest.load(shard_path).images
    maps = [rng.integers(0, 11, e.size, np.uint8) for e in entries]
    labels = out / f"{shard_path.stem}.labels.npz"
    write_label_shard(labels, [e.id for e in entries], maps)
    resized = out / f"{shard_path.stem}.resized.npz"
    resize_stage(labels, resized, backend, size, "nearest", False)
    return resized


# Malformed jsons: a valid base dataset, then mutations.
JSON_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6),
    st.lists(st.one_of(st.integers(-2, 40), st.floats()), max_size=9),
    st.dictionaries(st.sampled_from(["size", "counts", "x"]), st.integers(0, 40), max_size=2),
)
FIELDS = {
    "images": ["id", "file_name", "width", "height"],
    "categories": ["id", "name"],
    "annotations": ["image_id", "category_id", "segmentation", "area", "iscrowd"],
}


def name_variant(name, how):
    """Another spelling of a file name: look-alikes and non-canonical paths."""
    return {
        "upper": name.upper(),
        "nfd": unicodedata.normalize("NFD", name),
        "dot": "./" + name,
        "slashes": name.replace("/", "//"),
        "space": name + " ",
        "backslash": name.replace("/", "\\"),
        "brace": name.replace(".png", "{x}.png"),
    }[how]


@st.composite
def mutations(draw):
    """One change to a COCO dict, as (description, function)."""
    section = draw(st.sampled_from(sorted(FIELDS)))
    index = draw(st.integers(0, 3))
    kind = draw(st.sampled_from(["set", "delete", "section", "variant", "polygon", "copy"]))
    if kind == "set":
        field, value = draw(st.sampled_from(FIELDS[section])), draw(JSON_VALUES)
        return lambda coco: coco[section][index % len(coco[section])].update({field: value})
    if kind == "delete":
        field = draw(st.sampled_from(FIELDS[section]))
        return lambda coco: coco[section][index % len(coco[section])].pop(field, None)
    if kind == "section":
        value = draw(st.one_of(JSON_VALUES, st.just([])))
        return lambda coco: coco.update({section: value})
    if kind == "variant":
        how = draw(
            st.sampled_from(["upper", "nfd", "dot", "slashes", "space", "backslash", "brace"])
        )

        def rename(coco):
            images = coco["images"]
            images[index % len(images)]["file_name"] = name_variant(images[0]["file_name"], how)

        return rename
    if kind == "polygon":
        cut = draw(st.integers(0, 8))
        value = draw(st.sampled_from([math.nan, math.inf, -1e300, 1e12, "3", True, None, 2.5]))

        def edit_polygon(coco):
            polygon = coco["annotations"][index % len(coco["annotations"])]["segmentation"][0]
            del polygon[cut:]
            if cut % 3 == 0:
                polygon.insert(cut // 2, value)

        return edit_polygon
    field = draw(st.sampled_from(FIELDS[section]))  # copy a field from one record to another

    def copy_field(coco):
        records = coco[section]
        if field in records[0]:
            records[index % len(records)][field] = records[0][field]

    return copy_field


def base_coco(root):
    """A valid 4-image dataset with polygon annotations (tiny files: the manifest only hashes
    them, the fake inference never decodes them)."""
    coco = {"images": [], "annotations": [], "categories": []}
    coco["categories"] = [{"id": i + 1, "name": name} for i, name in enumerate(CLASSES[1:4])]
    for index, name in enumerate(["a/Café.png", "a/b.png", "c.png", "d/e/f.png"]):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(name.encode())
        coco["images"].append({"id": index + 1, "file_name": name, "width": 9, "height": 7})
        coco["annotations"].append(
            {"id": index + 1, "image_id": index + 1, "category_id": index % 3 + 1, "area": 6.0,
             "iscrowd": 0, "segmentation": [[1, 1, 5, 1, 5, 4, 1, 4]]}
        )  # fmt: skip
    return coco


def run_every_stage(root, json_path, out, rng):
    """manifest -> (fake) infer -> resize -> submission; ground truth and score when the json
    has annotations (a scored split without them is refused by the config check)."""
    shard_paths = [out / f"shards/{k}.json" for k in range(2)]
    manifest_stage(
        json_path, root, CLASSES, out / "manifest.json", shard_paths, max_image_pixels=4096
    )
    resized = [
        fake_infer_and_resize(out, path, rng, "albumentations", [5, 4]) for path in shard_paths
    ]
    outputs = {"competition_csv": out / "s.csv"}
    submission_stage(out / "manifest.json", resized, outputs, out / "s.json", CLASSES, [5, 4])
    if has_annotations(json_path):
        ground_truth_stage(json_path, out / "manifest.json", out / "gt.npz", CLASSES, [5, 4])
        score_stage(out / "gt.npz", resized, out / "score.json", out / "score.txt", CLASSES, "5x4")
        assert json.loads((out / "score.json").read_text())["images"] == len(
            Manifest.load(out / "manifest.json").images
        )


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(changes=st.lists(mutations(), min_size=1, max_size=3), seed=st.integers(0, 9))
def test_malformed_json_is_refused_at_the_manifest_or_goes_through(tmp_path_factory, changes, seed):
    root = tmp_path_factory.mktemp("data")
    coco = base_coco(root)
    for change in changes:
        # an earlier change may have removed what this one edits: then the json stays as it is
        with contextlib.suppress(
            TypeError, KeyError, AttributeError, IndexError, ZeroDivisionError
        ):
            change(coco)
    json_path = root / "val.json"
    json_path.write_text(json.dumps(coco, ensure_ascii=False), encoding="utf-8")
    out = tmp_path_factory.mktemp("results")
    try:
        manifest_stage(
            json_path, root, CLASSES, out / "m.json", [out / "0.json"], max_image_pixels=4096
        )
    except SegsubmitError as err:
        message = str(err)
        assert message.startswith(f"{json_path}: ") and "\n" not in message, message
        return
    run_every_stage(root, json_path, out, np.random.default_rng(seed))
