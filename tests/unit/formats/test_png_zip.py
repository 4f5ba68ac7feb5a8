"""png_zip: one 8-bit PNG per image, decoded back and compared with the maps before the rename;
label-id maps; corrupted copies refused in one line; constraints refused before any job."""

import io
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from segsubmit.errors import SegsubmitError
from segsubmit.formats.png_zip import member_name, validate_png_zip
from segsubmit.manifest import Manifest, ManifestEntry
from segsubmit.plugins import format_named
from segsubmit.submission import format_settings
from segsubmit.testing import CLASSES

NAMES = [f"batch_01_vt/{i:04d}.jpg" for i in range(4)]
SIZE = (12, 10)
PNG = format_named("png_zip")
CITYSCAPES_LIKE = {name: 7 + 2 * index for index, name in enumerate(CLASSES)}


def random_maps(count=4, size=SIZE, seed=0, high=11):
    return np.random.default_rng(seed).integers(0, high, (count, *size), dtype=np.uint8)


def png_settings(options=None, class_names=CLASSES, size=SIZE):
    return format_settings("png_zip", {"png_zip": options or {}}, class_names, size)


def write(path, maps, options=None, names=NAMES):
    return PNG.write(path, names, lambda: iter(maps), png_settings(options))


def members(path):
    with zipfile.ZipFile(path) as archive:
        return {
            info.filename: Image.open(io.BytesIO(archive.read(info))) for info in archive.infolist()
        }


@pytest.mark.parametrize("mode", ["L", "P"])
def test_written_pngs_hold_the_maps_named_after_the_images(tmp_path, mode):
    maps = random_maps()
    assert write(tmp_path / "s.zip", maps, {"mode": mode}) == {"rows": 4, "images": 4}
    images = members(tmp_path / "s.zip")
    assert list(images) == [f"batch_01_vt/{i:04d}.png" for i in range(4)]
    for image, label_map in zip(images.values(), maps, strict=True):
        assert image.format == "PNG" and image.mode == mode and image.size == (10, 12)
        assert np.array_equal(np.asarray(image), label_map)
    assert validate_png_zip(tmp_path / "s.zip", NAMES, png_settings({"mode": mode}), maps)


def test_same_maps_give_the_same_bytes(tmp_path):
    write(tmp_path / "a.zip", random_maps())
    write(tmp_path / "b.zip", random_maps())
    assert (tmp_path / "a.zip").read_bytes() == (tmp_path / "b.zip").read_bytes()


@settings(max_examples=40, deadline=None)
@given(
    maps=hnp.arrays(
        np.uint8,
        st.tuples(st.integers(1, 3), st.integers(1, 9), st.integers(1, 9)),
        elements=st.integers(0, 10),
    ),
    mode=st.sampled_from(["L", "P"]),
    ids=st.permutations(range(256)).map(lambda p: dict(zip(CLASSES, p[:11], strict=True))),
)
def test_any_maps_and_label_ids_round_trip(tmp_path_factory, maps, mode, ids):
    folder = tmp_path_factory.mktemp("png")
    names = [f"{i}.jpg" for i in range(len(maps))]
    options = {"mode": mode, "label_ids": ids}
    settings_ = png_settings(options, size=maps.shape[1:])
    PNG.write(folder / "s.zip", names, lambda: iter(maps), settings_)
    lookup = np.array([ids[name] for name in CLASSES], dtype=np.uint8)
    for image, label_map in zip(members(folder / "s.zip").values(), maps, strict=True):
        assert np.array_equal(np.asarray(image), lookup[label_map])
    PNG.validate(folder / "s.zip", names, settings_)


def test_label_ids_are_written_and_other_values_refused(tmp_path):
    maps = random_maps()
    write(tmp_path / "s.zip", maps, {"label_ids": CITYSCAPES_LIKE})
    first = np.asarray(next(iter(members(tmp_path / "s.zip").values())))
    assert np.array_equal(first, 7 + 2 * maps[0].astype(np.int64))
    PNG.validate(tmp_path / "s.zip", NAMES, png_settings({"label_ids": CITYSCAPES_LIKE}))
    with pytest.raises(SegsubmitError, match=r"holds value \d+, which is no class's label id"):
        PNG.validate(tmp_path / "s.zip", NAMES, png_settings())


def rewrite(path, edit):
    """The zip with its members passed through `edit` ({name: bytes} -> {name: bytes})."""
    with zipfile.ZipFile(path) as archive:
        content = {info.filename: archive.read(info) for info in archive.infolist()}
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in edit(content).items():
            archive.writestr(name, data)


def png_bytes(array, mode="L"):
    buffer = io.BytesIO()
    Image.fromarray(array).convert(mode).save(buffer, format="PNG")
    return buffer.getvalue()


def renamed(content, old, new):
    return {new if name == old else name: data for name, data in content.items()}


CORRUPTIONS = [
    (lambda c: renamed(c, "batch_01_vt/0001.png", "batch_01_vt/0009.png"), "member 2 is"),
    (lambda c: dict(list(c.items())[::-1]), "member 1 is 'batch_01_vt/0003.png'"),
    (lambda c: dict(list(c.items())[:3]), "3 PNGs, but the manifest lists 4 images"),
    (lambda c: {**c, "batch_01_vt/0002.png": b"not a png"}, "0002.png cannot be decoded as PNG"),
    (
        lambda c: {**c, "batch_01_vt/0002.png": c["batch_01_vt/0002.png"][:60]},
        "0002.png cannot be decoded as PNG",
    ),
    (
        lambda c: {**c, "batch_01_vt/0000.png": png_bytes(np.zeros((12, 9), np.uint8))},
        "0000.png is 12x9, expected 12x10",
    ),
    (
        lambda c: {**c, "batch_01_vt/0000.png": png_bytes(np.zeros((12, 10, 3), np.uint8), "RGB")},
        "0000.png is a RGB image",
    ),
    (
        lambda c: {**c, "batch_01_vt/0000.png": png_bytes(np.full((12, 10), 11, np.uint8))},
        "0000.png holds value 11",
    ),
]


@pytest.mark.parametrize(("corrupt", "message"), CORRUPTIONS)
def test_a_corrupted_copy_is_refused_in_one_line(tmp_path, corrupt, message):
    write(tmp_path / "s.zip", random_maps())
    rewrite(tmp_path / "s.zip", corrupt)
    with pytest.raises(SegsubmitError, match=message) as caught:
        PNG.validate(tmp_path / "s.zip", NAMES, png_settings())
    assert "\n" not in str(caught.value)


def test_truncated_zip_and_changed_pixels_are_refused(tmp_path):
    maps = random_maps()
    write(tmp_path / "s.zip", maps)
    data = (tmp_path / "s.zip").read_bytes()
    (tmp_path / "s.zip").write_bytes(data[: len(data) // 2])
    with pytest.raises(SegsubmitError, match="cannot read as a zip"):
        PNG.validate(tmp_path / "s.zip", NAMES, png_settings())
    write(tmp_path / "s.zip", maps)
    changed = maps.copy()
    changed[3, 5, 5] = (changed[3, 5, 5] + 1) % 11
    with pytest.raises(SegsubmitError, match="0003.png differs from the prediction at 1 pixels"):
        validate_png_zip(tmp_path / "s.zip", NAMES, png_settings(), changed)


def test_file_names_that_become_one_member_are_refused(tmp_path):
    with pytest.raises(SegsubmitError, match="'a.jpg' and 'a.png' both become 'a.png'"):
        write(tmp_path / "s.zip", random_maps(2), names=["a.jpg", "a.png"])
    assert member_name("x/y") == "x/y.png"


@pytest.mark.parametrize(
    ("section", "class_names", "message"),
    [
        (
            {"label_ids": {name: i for i, name in enumerate(CLASSES[:-1])}},
            CLASSES,
            "submission.png_zip.label_ids: no id for 'Clothing'; give every class an id",
        ),
        (
            {"label_ids": {**CITYSCAPES_LIKE, "Paper": 7}},
            CLASSES,
            "submission.png_zip.label_ids: 'Background' and 'Paper' both map to 7",
        ),
        (
            {"label_ids": {**CITYSCAPES_LIKE, "Papers": 1}},
            CLASSES,
            "submission.png_zip.label_ids: 'Papers' not in `classes`",
        ),
        (
            {"label_ids": {**CITYSCAPES_LIKE, "Paper": 300}},
            CLASSES,
            "submission.png_zip.label_ids: 'Paper' maps to 300, above 255",
        ),
        (
            {},
            [f"class {i}" for i in range(300)],
            "submission.png_zip: `classes` lists 300 classes but an 8-bit PNG holds 256 values",
        ),
    ],
)
def test_constraints_are_refused_in_one_line(section, class_names, message):
    with pytest.raises(SegsubmitError, match=message) as caught:
        PNG.check_options(section, class_names, [256, 256])
    assert "\n" not in str(caught.value)
    PNG.check_options({"label_ids": CITYSCAPES_LIKE}, CLASSES, [256, 256])


def test_cli_validates_and_refuses_a_corrupted_copy(tmp_path):
    write(tmp_path / "s.zip", random_maps(), {"label_ids": CITYSCAPES_LIKE})
    entries = [ManifestEntry(i, n, n, SIZE[1], SIZE[0], 0, "0") for i, n in enumerate(NAMES)]
    Manifest("data", tuple(entries)).save(tmp_path / "manifest.json")
    config = tmp_path / "config.yaml"
    submission = {"formats": ["png_zip"], "png_zip": {"label_ids": CITYSCAPES_LIKE}}
    config.write_text(yaml.safe_dump({"resize": {"size": list(SIZE)}, "submission": submission}))
    command = [
        sys.executable,
        "-m",
        "segsubmit.cli",
        "validate-submission",
        str(tmp_path / "s.zip"),
    ]
    command += [str(tmp_path / "manifest.json"), "--format", "png_zip", "--config", str(config)]
    ok = subprocess.run(command, capture_output=True, text=True)
    assert ok.returncode == 0 and "(4 images, 4 rows)" in ok.stdout
    rewrite(tmp_path / "s.zip", lambda c: dict(list(c.items())[:3]))
    bad = subprocess.run(command, capture_output=True, text=True)
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1
    assert "3 PNGs, but the manifest lists 4 images" in bad.stderr
