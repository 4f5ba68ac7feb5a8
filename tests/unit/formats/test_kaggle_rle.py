"""kaggle_rle: the encoder equals a pure-Python reference, the file is decoded back and compared
with the maps before its rename, corrupted copies are refused in one line, options checked."""

import subprocess
import sys

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from segsubmit.errors import SegsubmitError
from segsubmit.formats.kaggle_rle import decode_rle, encode_mask, rle_strings, validate_rle
from segsubmit.manifest import Manifest, ManifestEntry
from segsubmit.plugins import format_named
from segsubmit.submission import format_settings
from segsubmit.testing import CLASSES

NAMES = [f"batch_01_vt/{i:04d}.jpg" for i in range(4)]
SIZE = (12, 10)
KAGGLE = format_named("kaggle_rle")


def reference_rle(mask):
    """Kaggle RLE the straightforward way: pixels top to bottom, then left to right, numbered
    from 1; each run of True as `start length`; nothing for an empty mask."""
    height, width = len(mask), len(mask[0])
    pixels = [bool(mask[row][column]) for column in range(width) for row in range(height)]
    runs, position = [], 0
    while position < len(pixels):
        if pixels[position]:
            end = position
            while end < len(pixels) and pixels[end]:
                end += 1
            runs += [position + 1, end - position]
            position = end
        else:
            position += 1
    return " ".join(str(number) for number in runs)


def random_maps(count=4, size=SIZE, seed=0, high=11):
    maps = np.random.default_rng(seed).integers(0, high, (count, *size), dtype=np.uint8)
    maps[1] = 0  # an all-background image: every row of it blank
    return maps


def rle_settings(options=None, class_names=CLASSES, size=SIZE):
    return format_settings("kaggle_rle", {"kaggle_rle": options or {}}, class_names, size)


def write(path, maps, options=None, **kwargs):
    return KAGGLE.write(path, NAMES, lambda: iter(maps), rle_settings(options, **kwargs))


@settings(max_examples=200, deadline=None)
@given(hnp.arrays(bool, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=9)))
def test_encoder_equals_the_pure_python_reference_and_decodes_back(mask):
    text = encode_mask(mask)
    assert text == reference_rle(mask.tolist())
    assert np.array_equal(decode_rle(text, mask.shape), mask)


@settings(max_examples=100, deadline=None)
@given(
    hnp.arrays(
        np.uint8,
        hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=8),
        elements=st.integers(0, 4),
    )
)
def test_per_class_strings_equal_the_reference_per_class(label_map):
    strings = rle_strings(label_map, range(5))
    for value in range(5):
        assert strings[value] == reference_rle((label_map == value).tolist())


def test_known_layout_column_major_one_indexed():
    mask = np.array([[1, 0, 1], [1, 0, 1]], dtype=bool)  # columns 1 and 3 filled
    assert encode_mask(mask) == "1 2 5 2"
    assert encode_mask(np.zeros((2, 3), bool)) == ""


@pytest.mark.parametrize("layout", ["image_class_rle", "imageid_classid"])
def test_written_file_is_read_back_and_equals_the_maps(tmp_path, layout):
    maps = random_maps()
    summary = write(tmp_path / "s.csv", maps, {"layout": layout})
    assert summary == {"rows": 4 * 10, "images": 4}
    lines = (tmp_path / "s.csv").read_text().splitlines()
    if layout == "image_class_rle":
        assert lines[0] == "image_name,class,rle"
        assert lines[1].startswith("batch_01_vt/0000.jpg,General trash,")
        assert lines[11] == "batch_01_vt/0001.jpg,General trash,"  # empty mask: blank
    else:
        assert lines[0] == "ImageId_ClassId,EncodedPixels"
        assert lines[1].startswith("batch_01_vt/0000.jpg_1,")
    settings_ = rle_settings({"layout": layout})
    assert validate_rle(tmp_path / "s.csv", NAMES, settings_, maps)["rows"] == 40


def test_classes_option_picks_the_rows_background_included(tmp_path):
    maps = random_maps()
    write(tmp_path / "s.csv", maps, {"classes": ["Paper", "Background"]})
    lines = (tmp_path / "s.csv").read_text().splitlines()
    assert [line.split(",")[1] for line in lines[1:5]] == ["Paper", "Background"] * 2
    background = decode_rle(lines[2].split(",")[2], SIZE)
    assert np.array_equal(background, maps[0] == 0)


CORRUPTIONS = [
    (lambda t: t.replace("image_name,class,rle", "image,class,rle"), "header must be"),
    (lambda t: t.replace("0001.jpg,General", "0009.jpg,General", 1), "manifest and class order"),
    (lambda t: t.replace(",General trash,", ",Paper,", 1), "manifest and class order"),
    (lambda t: "\n".join(t.splitlines()[:-1]) + "\n", "ends at line 40"),
    (lambda t: t + "batch_01_vt/0000.jpg,Paper,\n", "line 42 is past the 4 images"),
    (lambda t: t.replace(",Paper,", ",Paper,0 1 ", 1), "start below 1"),
    (lambda t: t.replace(",Paper,", ",Paper,x", 1), "not space-separated integers"),
    (lambda t: t.replace(",Paper,", ",Paper,119 5 ", 1), "past the 120 pixels"),
    (lambda t: t.replace(",Paper,", ",Paper,7 ", 1), "not start/length pairs"),
    (lambda t: t.replace(",Paper,", ",Paper,1 120 ", 1), "out of order or overlapping"),
]


@pytest.mark.parametrize(("corrupt", "message"), CORRUPTIONS)
def test_a_corrupted_copy_is_refused_in_one_line(tmp_path, corrupt, message):
    maps = random_maps()
    write(tmp_path / "s.csv", maps)
    path = tmp_path / "s.csv"
    path.write_text(corrupt(path.read_text()))
    with pytest.raises(SegsubmitError, match=message) as caught:
        KAGGLE.validate(path, NAMES, rle_settings())
    assert "\n" not in str(caught.value)


def test_overlapping_masks_and_changed_pixels_are_refused(tmp_path):
    maps = random_maps()
    write(tmp_path / "s.csv", maps)
    path = tmp_path / "s.csv"
    lines = path.read_text().splitlines()
    name, _, rle = lines[1].split(",")
    lines[2] = f"{name},Paper,{rle}"  # Paper's mask = General trash's mask
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(SegsubmitError, match="mask of 'Paper' overlaps 'General trash'"):
        KAGGLE.validate(path, NAMES, rle_settings())
    write(path, maps)
    changed = maps.copy()
    changed[0, 0, 0] = (changed[0, 0, 0] + 1) % 11
    with pytest.raises(SegsubmitError, match="differs from the prediction at 1 pixels"):
        validate_rle(path, NAMES, rle_settings(), changed)


def test_the_check_runs_before_the_final_name(tmp_path, monkeypatch):
    from segsubmit.formats import kaggle_rle

    def fail(*args, **kwargs):
        raise SegsubmitError("check failed")

    monkeypatch.setattr(kaggle_rle, "validate_rle", fail)
    with pytest.raises(SegsubmitError, match="check failed"):
        write(tmp_path / "s.csv", random_maps())
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("section", "size", "message"),
    [
        (
            {"size": [2048, 2048]},
            [256, 256],
            r"submission.kaggle_rle.size: the competition decodes the RLE at \[2048, 2048\] but "
            r"resize.size is \[256, 256\]",
        ),
        ({"classes": ["Papers"]}, [256, 256], "submission.kaggle_rle.classes: 'Papers' not in"),
        ({"classes": []}, [256, 256], "submission.kaggle_rle.classes: empty"),
    ],
)
def test_options_that_cannot_work_are_refused_in_one_line(section, size, message):
    with pytest.raises(SegsubmitError, match=message) as caught:
        KAGGLE.check_options(section, CLASSES, size)
    assert "\n" not in str(caught.value)
    KAGGLE.check_options({"size": list(size)}, CLASSES, size)


def save_manifest(path, names):
    entries = [
        ManifestEntry(i, name, name, SIZE[1], SIZE[0], 0, "0") for i, name in enumerate(names)
    ]
    Manifest("data", tuple(entries)).save(path)
    return path


def test_cli_validates_with_the_run_config_and_refuses_a_corrupted_copy(tmp_path):
    maps = random_maps()
    options = {"layout": "imageid_classid", "classes": ["Paper", "Glass"]}
    write(tmp_path / "s.csv", maps, options)
    manifest = save_manifest(tmp_path / "manifest.json", NAMES)
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump({"resize": {"size": list(SIZE)}, "submission": {"kaggle_rle": options}})
    )
    command = [
        sys.executable,
        "-m",
        "segsubmit.cli",
        "validate-submission",
        str(tmp_path / "s.csv"),
    ]
    command += [str(manifest), "--format", "kaggle_rle", "--config", str(config)]
    ok = subprocess.run(command, capture_output=True, text=True)
    assert ok.returncode == 0 and "valid:" in ok.stdout and "(4 images, 8 rows)" in ok.stdout
    text = (tmp_path / "s.csv").read_text()
    (tmp_path / "s.csv").write_text(text.replace("0002.jpg_2,", "0002.jpg_5,"))
    bad = subprocess.run(command, capture_output=True, text=True)
    assert bad.returncode == 1 and bad.stderr.startswith("invalid: ")
    assert bad.stderr.count("\n") == 1 and "manifest and class order" in bad.stderr
