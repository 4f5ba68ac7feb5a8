"""resize.interpolation block_max against numpy references and the report's comparison of
the three resizes; ground truth read from label-PNG folders (VOC/ADE/Cityscapes layouts)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from segsubmit.config import check_masks, default_config
from segsubmit.errors import SegsubmitError
from segsubmit.ground_truth import ground_truth_stage, mask_lookup, mask_path, read_mask
from segsubmit.labels import read_label_shard
from segsubmit.manifest import Manifest, ManifestEntry
from segsubmit.report import compare_interpolations, score_table_html
from segsubmit.resize import check_interpolation, resize_label_maps
from segsubmit.testing import CLASSES


def test_block_max_equals_the_competitors_two_by_two_reshape():
    maps = np.random.default_rng(0).integers(0, 11, (3, 64, 48), dtype=np.uint8)
    expected = np.stack([m.reshape(32, 2, 24, 2).max((1, 3)) for m in maps])
    for backend in ("albumentations", "kornia"):
        assert np.array_equal(resize_label_maps(maps, (32, 24), backend, "block_max"), expected)


@settings(max_examples=60, deadline=None)
@given(
    st.tuples(st.integers(1, 4), st.integers(1, 4), st.integers(1, 5), st.integers(1, 5)).flatmap(
        lambda t: st.tuples(
            st.just(t),
            hnp.arrays(np.uint8, (t[0] * t[2], t[1] * t[3]), elements=st.integers(0, 255)),
        )
    )
)
def test_block_max_of_any_whole_factor_equals_a_loop(case):
    (kh, kw, height, width), label_map = case
    expected = np.array(
        [
            [label_map[r * kh : (r + 1) * kh, c * kw : (c + 1) * kw].max() for c in range(width)]
            for r in range(height)
        ],
        dtype=np.uint8,
    )
    result = resize_label_maps([label_map], (height, width), "albumentations", "block_max")[0]
    assert np.array_equal(result, expected)


def test_block_max_refuses_other_factors_in_one_line():
    with pytest.raises(SegsubmitError, match="block_max needs sides that are whole multiples"):
        resize_label_maps([np.zeros((50, 50), np.uint8)], (32, 32), "albumentations", "block_max")
    check_interpolation("block_max", False)  # no opt-in needed: it invents no class


def boundary_maps():
    """Two halves with classes 1 and 9 and a diagonal boundary: where bilinear invents 5."""
    rows, cols = np.mgrid[:64, :64]
    truth = np.where(rows + cols < 64, 1, 9).astype(np.uint8)
    return np.stack([truth, np.roll(truth, 3, axis=1)])


def test_the_report_compares_nearest_bilinear_and_block_max():
    maps = boundary_maps()
    truths = resize_label_maps(maps, (32, 32), "albumentations", "nearest")
    comparison, _ = compare_interpolations([maps], [truths], (32, 32), 11)
    methods = comparison["methods"]
    assert list(methods) == ["nearest", "bilinear", "block_max", "probability"]
    assert methods["probability"] is None  # no probability-space maps given
    assert methods["nearest"]["changed"] == 0 and methods["nearest"]["invented"] == 0
    assert methods["block_max"]["invented"] == 0 < methods["block_max"]["changed"]
    assert methods["bilinear"]["invented"] > 0
    assert methods["block_max"]["miou_delta"] < 0  # the truth is nearest-resized
    page = score_table_html({"32x32": comparison["nearest"]}, CLASSES, comparison)
    assert "2x2 block max" in page and "vs nearest" in page
    odd, _ = compare_interpolations([maps[:, :63, :63]], [truths], (32, 32), 11)
    assert odd["methods"]["block_max"] is None and odd["block_max"] is None
    assert "n/a (sides not whole" in score_table_html({"32x32": odd["nearest"]}, CLASSES, odd)


def write_png(path, values, mode="L"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(values.astype(np.uint8)).convert(mode).save(path)


def test_mask_paths_follow_the_file_names():
    assert mask_path("data/ann/val", "batch_01/0001.jpg") == (
        mask_path("data/ann/val", "batch_01/0001.png")
    )
    cityscapes = mask_path(
        "gtFine/val", "aachen/a_leftImg8bit.png", "_leftImg8bit.png", "_gtFine_labelIds.png"
    )
    assert str(cityscapes) == "gtFine/val/aachen/a_gtFine_labelIds.png"
    with pytest.raises(SegsubmitError, match="does not end with '_leftImg8bit.png'"):
        mask_path("f", "a.jpg", "_leftImg8bit.png")


def test_label_pngs_become_class_maps_with_ids_and_ignore(tmp_path):
    entry = ManifestEntry(1, "a.jpg", "a.jpg", 4, 2, 0, "0")
    names = ["background", "road", "car"]
    lookup = mask_lookup({"background": 0, "road": 7, "car": 26}, names, 255)
    write_png(tmp_path / "a.png", np.array([[0, 7, 26, 255], [7, 7, 3, 26]]))
    values = read_mask(tmp_path / "a.png", entry, lookup)
    assert values.tolist() == [[0, 1, 2, 255], [1, 1, 255, 2]]  # 3 is no class's: ignored
    write_png(tmp_path / "p.png", np.array([[0, 1, 2, 255], [1, 1, 2, 2]]), mode="P")
    plain = read_mask(tmp_path / "p.png", entry, mask_lookup({}, names, 255))
    assert plain.tolist() == [[0, 1, 2, 255], [1, 1, 2, 2]]


@pytest.mark.parametrize(
    ("values", "mode", "lookup_ignore", "message"),
    [
        (np.array([[0, 1, 9, 1], [0, 0, 0, 0]]), "L", None, "pixel value 9 is no class's"),
        (np.zeros((3, 4)), "L", 255, r"a.png: 4x3, but a.jpg is 4x2"),
        (np.zeros((2, 4, 3)), "RGB", 255, "a RGB image; label PNGs hold 8-bit values"),
        (None, "L", 255, "no label PNG for a.jpg"),
    ],
)
def test_bad_label_pngs_are_refused_in_one_line(tmp_path, values, mode, lookup_ignore, message):
    entry = ManifestEntry(1, "a.jpg", "a.jpg", 4, 2, 0, "0")
    if values is not None:
        write_png(tmp_path / "a.png", values, mode)
    with pytest.raises(SegsubmitError, match=message) as caught:
        read_mask(tmp_path / "a.png", entry, mask_lookup({}, ["a", "b", "c"], lookup_ignore))
    assert "\n" not in str(caught.value)


def test_ground_truth_stage_reads_a_mask_folder(tmp_path):
    rng = np.random.default_rng(0)
    entries = tuple(ManifestEntry(i, f"b/{i}.jpg", f"b/{i}.jpg", 8, 6, 0, "0") for i in range(3))
    Manifest("data", entries).save(tmp_path / "manifest.json")
    truths = rng.integers(0, 11, (3, 6, 8)).astype(np.uint8)
    truths[:, 0] = 255
    for entry, truth in zip(entries, truths, strict=True):
        write_png(tmp_path / "masks" / "b" / f"{entry.id}.png", truth)
    masks = {"folder": str(tmp_path / "masks"), "image_suffix": None, "suffix": ".png"}
    ground_truth_stage(None, tmp_path / "manifest.json", tmp_path / "gt.npz", CLASSES, None,
                       masks=masks, ignore_index=255)  # fmt: skip
    ids, maps = read_label_shard(tmp_path / "gt.npz")
    assert ids == [0, 1, 2] and np.array_equal(maps, truths)


def test_mask_settings_that_cannot_work_are_refused():
    config = default_config()
    config["data"]["masks"]["folder"] = "ann_dir/{split}"
    with pytest.raises(SegsubmitError, match="data.masks.folder: needs data.root"):
        check_masks(config)
    config["data"]["root"] = "data"
    config["data"]["masks"]["label_ids"] = {"Paper": 3, "Glass": 3}
    with pytest.raises(SegsubmitError, match="'Paper' and 'Glass' both map to 3"):
        check_masks(config)
