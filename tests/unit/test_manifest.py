"""COCO validation and sharding: every bad input gets one line naming the file and the ids."""

import json

import pytest
from conftest import CLASSES, make_dataset

from segsubmit.errors import SegsubmitError
from segsubmit.ground_truth import validated_dataset
from segsubmit.manifest import (
    IMAGES_PER_TASK,
    build_manifest,
    file_digest,
    image_chunks,
    image_fingerprint,
    shard_of,
)
from segsubmit.summary import checkpoint_note


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
    return build_manifest(root / "val.json", root, CLASSES, 3, max_pixels=10**8).images


def test_manifest_keeps_json_order_and_hashes_files(dataset):
    entries = build(dataset)
    coco = json.loads((dataset / "val.json").read_text())
    assert [e.id for e in entries] == [i["id"] for i in coco["images"]]
    assert all(len(e.sha1) == 40 and e.shard == shard_of(e.file_name, 3) for e in entries)


def test_worker_processes_give_the_serial_manifest_and_the_first_bad_image(tmp_path):
    """Several tasks for 4 worker processes (image_chunks): the manifest they build equals the
    one built in this process (threads=1), entry by entry; with a missing image in one task and
    a TIFF in a later one the error names the first in json order, as the serial loop does."""
    root = make_dataset(tmp_path / "data", {"val": 3}, size=16)
    coco = json.loads((root / "val.json").read_text())
    images = [
        {**coco["images"][index % 3], "id": index, "file_name": f"copy/{index:05d}.jpg"}
        for index in range(3 * IMAGES_PER_TASK[1] + 37)
    ]
    assert len(image_chunks(images, 4)) == 4
    (root / "copy").mkdir()
    for index, image in enumerate(images):
        data = (root / coco["images"][index % 3]["file_name"]).read_bytes()
        (root / image["file_name"]).write_bytes(data + index.to_bytes(4, "little"))  # distinct
    edit_json(root, lambda c: c.update(images=images, annotations=[]))
    one = build_manifest(root / "val.json", root, CLASSES, 3, threads=1)
    four = build_manifest(root / "val.json", root, CLASSES, 3, threads=4)
    assert one == four and len({e.sha1 for e in four.images}) == len(images)
    assert [e.sha1 for e in four.images] == [
        file_digest(root / image["file_name"]) for image in images
    ]
    missing, tiff = root / images[700]["file_name"], root / images[790]["file_name"]
    kept = missing.read_bytes()
    missing.unlink()
    save_frames(tiff, 1, format="TIFF")
    for threads in (1, 4):
        with pytest.raises(SegsubmitError, match="lists 'copy/00700.jpg' but"):
            build_manifest(root / "val.json", root, CLASSES, 3, threads=threads)
    missing.write_bytes(kept)
    for threads in (1, 4):
        with pytest.raises(SegsubmitError, match=r"'copy/00790.jpg' \(.*\) is a TIFF image"):
            build_manifest(root / "val.json", root, CLASSES, 3, threads=threads)


def test_image_chunks_keep_json_order_in_bounded_tasks():
    images = list(range(1000))
    assert image_chunks(images, 1) == [images]
    for workers in (2, 4, 16, 64):
        chunks = image_chunks(images, workers)
        assert [image for chunk in chunks for image in chunk] == images
        assert all(len(chunk) <= IMAGES_PER_TASK[1] for chunk in chunks)
        assert all(len(chunk) >= IMAGES_PER_TASK[0] for chunk in chunks[:-1])
        assert len(chunks) >= min(workers, len(images) // IMAGES_PER_TASK[0])
    assert image_chunks(images[:10], 8) == [images[:10]]


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
        # exact types, finite and positive numbers
        (lambda c: c["images"][0].update(id="1"), r"images\[0\].id must be an integer, got '1'"),
        (lambda c: c["images"][0].update(id=True), r"images\[0\].id must be an integer"),
        (lambda c: c["images"][0].update(width=32.0), r"images\[0\].width must be a positive"),
        (lambda c: c["images"][0].update(height=0), r"images\[0\].height must be a positive"),
        (lambda c: c["images"][0].update(height=-4), r"images\[0\].height must be a positive"),
        (lambda c: c["images"][0].update(file_name=7), "file_name 7 must be a non-empty string"),
        (lambda c: c.update(images={"0": 1}), "'images' is missing or empty"),
        (lambda c: c.update(annotations={}), "'annotations' must be a list"),
        (lambda c: c["images"].append(5), r"images\[6\] must be an object"),
        (lambda c: c["categories"][0].update(id="1"), r"categories\[0\].id must be an integer"),
        (
            lambda c: c["categories"][1].update(name=c["categories"][0]["name"]),
            "duplicate category names",
        ),
        (
            lambda c: c["categories"][1].update(id=c["categories"][0]["id"]),
            "duplicate category ids",
        ),
        (
            lambda c: c["annotations"][0].update(category_id=1.0),
            r"annotations\[0\].category_id must be an integer",
        ),
        (
            lambda c: c["annotations"][0].update(area=float("nan")),
            r"annotations\[0\].area must be a finite",
        ),
        (lambda c: c["annotations"][0].update(area=-1), r"annotations\[0\].area must be a finite"),
        (
            lambda c: c["annotations"][0].update(iscrowd=2),
            r"annotations\[0\].iscrowd must be 0 or 1",
        ),
        # segmentations
        (
            lambda c: c["annotations"][0].update(segmentation=[[1, 2, 3, 4]]),
            "polygon 0 has 4 numbers",
        ),
        (
            lambda c: c["annotations"][0].update(segmentation=[[1, 2, 3, 4, 5]]),
            "polygon 0 has 5 numbers",
        ),
        (
            lambda c: c["annotations"][0].update(segmentation=[[1, 2, 3, float("inf"), 5, 6]]),
            "finite numbers",
        ),
        (
            lambda c: c["annotations"][0].update(segmentation=[[1, 2, "3", 4, 5, 6]]),
            "finite numbers",
        ),
        (
            lambda c: c["annotations"][0].update(segmentation=[[1, 2, 3, 4, 5, 1e12]]),
            "outside the 32x32 image",
        ),
        (
            lambda c: c["annotations"][0].update(segmentation=[]),
            "non-empty list of polygons or an RLE",
        ),
        (
            lambda c: c["annotations"][0].update(segmentation={"size": [32, 32], "counts": [5, 3]}),
            "RLE counts cover 8 pixels",
        ),
        (
            lambda c: c["annotations"][0].update(segmentation={"size": [9, 32], "counts": [288]}),
            "RLE size",
        ),
        (
            lambda c: c["annotations"][0].update(
                segmentation={"size": [32, 32], "counts": "\x7f!"}
            ),
            "compressed RLE",
        ),
        # one canonical spelling per file
        (lambda c: c["images"][0].update(file_name="batch_01_vt\\0.jpg"), "backslash"),
        (
            lambda c: c["images"][0].update(file_name="./" + c["images"][0]["file_name"]),
            "'./' component",
        ),
        (
            lambda c: c["images"][0].update(
                file_name=c["images"][0]["file_name"].replace("/", "//")
            ),
            "'//'",
        ),
        (
            lambda c: c["images"][0].update(file_name=" " + c["images"][0]["file_name"]),
            "leading or trailing spaces",
        ),
        (
            lambda c: c["images"][0].update(file_name="{split}.jpg"),
            "which Snakemake or a shell interprets",
        ),
        (lambda c: c["images"][0].update(file_name="a*.jpg"), "'\\*'"),
        (lambda c: c["images"][0].update(file_name="a\n.jpg"), "control characters"),
        (
            lambda c: c["images"][1].update(file_name=c["images"][0]["file_name"].upper()),
            "differ only in case",
        ),
        (
            lambda c: [
                c["images"][0].update(file_name="caf\u00e9.jpg"),
                c["images"][1].update(file_name="cafe\u0301.jpg"),
            ],
            "Unicode normalisation",
        ),
        (
            lambda c: c["images"][0].update(width=10**5, height=10**5),
            "above infer.max_image_pixels",
        ),
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


def test_symlinked_folders_resolve_as_realpath_does(dataset, tmp_path):
    """A folder symlink is followed like a file symlink: inside the root, the entry records the
    file it leads to; out of it, the image is refused."""
    coco = json.loads((dataset / "val.json").read_text())
    name = coco["images"][0]["file_name"]
    (dataset / "inside").mkdir()
    (dataset / "inside" / "linked").symlink_to(dataset, target_is_directory=True)
    edit_json(dataset, lambda c: c["images"][0].update(file_name=f"inside/linked/{name}"))
    assert build(dataset)[0].path == name
    (tmp_path / "elsewhere").mkdir()
    (dataset / name).rename(tmp_path / "elsewhere" / "a.jpg")
    (dataset / "out").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    edit_json(dataset, lambda c: c["images"][0].update(file_name="out/a.jpg"))
    with pytest.raises(SegsubmitError, match="file_name 'out/a.jpg' resolves outside"):
        build(dataset)


def test_not_json_and_missing_json(tmp_path):
    (tmp_path / "val.json").write_text("{not json")
    with pytest.raises(SegsubmitError, match="not valid JSON"):
        build(tmp_path)
    with pytest.raises(SegsubmitError, match="COCO json not found"):
        build_manifest(tmp_path / "nope.json", tmp_path, CLASSES, 2)


def test_entries_record_the_file_the_manifest_hashed(dataset, tmp_path):
    """Later stages open `data_root / entry.path`: the resolved file the manifest hashed."""
    coco = json.loads((dataset / "val.json").read_text())
    target = dataset / coco["images"][0]["file_name"]
    (dataset / "alias.jpg").symlink_to(target)
    edit_json(dataset, lambda c: c["images"][0].update(file_name="alias.jpg"))
    entry = build(dataset)[0]
    assert entry.file_name == "alias.jpg"
    assert entry.path == coco["images"][0]["file_name"]
    assert entry.sha1 == file_digest(target)


def test_missing_area_is_computed_and_annotations_renumbered(dataset):
    """The ground truth never reads a field the manifest did not check: `area` may be absent,
    annotation ids may repeat."""

    def drop_area_and_ids(coco):
        for annotation in coco["annotations"]:
            annotation.pop("area")
            annotation["id"] = 1

    edit_json(dataset, drop_area_and_ids)
    build(dataset)
    annotations = validated_dataset(dataset / "val.json", CLASSES)["annotations"]
    assert [a["id"] for a in annotations] == list(range(1, len(annotations) + 1))
    assert all(a["area"] > 0 for a in annotations)


def latin1_name(coco):
    """A file_name as os.listdir + json.dumps write a Latin-1 name: a lone surrogate escape."""
    coco["images"][0]["file_name"] = "caf\udce9.jpg"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: c["images"][0].update(id=2**63), r"images\[0\].id must be within int64"),
        (lambda c: c["images"][0].update(id=-(2**63) - 1), "within int64"),
        (
            lambda c: c["categories"][0].update(id=10**30),
            r"categories\[0\].id must be within int64",
        ),
        (latin1_name, r"file_name 'caf\\udce9.jpg' is not valid UTF-8 .*rename the file"),
    ],
)
def test_values_later_stages_cannot_hold_are_refused(dataset, change, message):
    """The json allows them; the label files (int64 ids) and UTF-8 paths do not. While the DAG
    is planned (fingerprint, dry-run note) they pass without a traceback; the manifest refuses."""
    json_path = edit_json(dataset, change)
    assert len(image_fingerprint(json_path, dataset)) == 40
    assert "6 images" in checkpoint_note("val", json_path, 2)
    with pytest.raises(SegsubmitError, match=message) as error:
        build(dataset)
    assert str(json_path) in str(error.value) and "\n" not in str(error.value)


def save_frames(path, count, **options):
    from PIL import Image

    frames = [Image.new("RGB", (32, 32), (40 * index, 0, 0)) for index in range(count)]
    frames[0].save(path, save_all=count > 1, append_images=frames[1:], **options)


@pytest.mark.parametrize(
    ("suffix", "count", "message"),
    [
        ("gif", 3, r"holds 3 frames \(GIF\); export its first frame"),
        ("webp", 2, r"holds 2 frames \(WEBP\)"),
        ("png", 2, r"holds 2 frames \(PNG\)"),  # APNG
        ("tiff", 3, "is a TIFF image, which the decoder cannot read"),
        ("bmp", 1, "is a BMP image, which the decoder cannot read .*convert it to PNG or JPEG"),
    ],
)
def test_multi_frame_and_undecodable_images_are_refused_at_the_manifest(
    dataset, suffix, count, message
):
    """Found from the headers before any inference (they used to fail at inference, after other
    shards ran, or as a size mismatch against a json that is right)."""
    coco = json.loads((dataset / "val.json").read_text())
    name = coco["images"][1]["file_name"]
    save_frames(dataset / f"{name}.{suffix}", count)
    json_path = edit_json(dataset, lambda c: c["images"][1].update(file_name=f"{name}.{suffix}"))
    with pytest.raises(SegsubmitError, match=message) as error:
        build(dataset)
    assert str(json_path) in str(error.value) and f"{name}.{suffix}" in str(error.value)
    assert "\n" not in str(error.value)


def test_single_frame_gif_and_webp_pass(dataset):
    coco = json.loads((dataset / "val.json").read_text())
    for index, suffix in ((1, "gif"), (2, "webp")):
        save_frames(dataset / f"single.{suffix}", 1)
        coco["images"][index]["file_name"] = f"single.{suffix}"
    (dataset / "val.json").write_text(json.dumps(coco))
    assert len(build(dataset)) == 6
