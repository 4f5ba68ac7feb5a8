"""submission.csv gathered from per-shard row fragments: the same bytes as the one-pass writer,
each row decoded back when encoded, every row re-read against its fragment's sha1."""

import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segsubmit.errors import SegsubmitError
from segsubmit.formats.competition_csv import encode_row, write_submission
from segsubmit.formats.competition_csv_rows import (
    RowFragment,
    decode_row,
    gather_submission,
    single_digit_values,
    write_row_fragment,
)
from segsubmit.plugins import format_settings
from segsubmit.testing import parse_prediction_string

NAMES = [f"batch_0{i % 3 + 1}_vt/{i:04d}.jpg" for i in range(40)] + ['odd, "name".jpg']


def random_maps(count, high=11, size=(32, 32), seed=0):
    return np.random.default_rng(seed).integers(0, high, (count, *size), dtype=np.uint8)


def fragments_of(folder, maps, shards=3, size=(32, 32), num_classes=11):
    """Fragments of `maps` (image id = position) split round-robin into `shards`, as the resize
    jobs write them; their settings for gathering in position order."""
    paths = []
    for shard in range(shards):
        ids = list(range(shard, len(maps), shards))
        path = folder / f"{shard}.competition_csv.rows"
        write_row_fragment(path, ids, (maps[i] for i in ids), csv_settings(size, num_classes))
        paths.append(path)
    return csv_settings(size, num_classes, range(len(maps)), paths)


def csv_settings(size=(32, 32), num_classes=11, image_ids=(), fragments=()):
    return format_settings("competition_csv", {}, num_classes, size, 2, image_ids, fragments)


@pytest.mark.parametrize("high", [10, 11, 200])  # one digit, two, three
def test_gathered_csv_is_byte_identical_to_the_one_pass_writer(tmp_path, high):
    maps = random_maps(len(NAMES), high=high)
    settings = fragments_of(tmp_path, maps, num_classes=256)
    assert gather_submission(tmp_path / "gathered.csv", NAMES, settings) == {"rows": len(NAMES)}
    write_submission(tmp_path / "one_pass.csv", NAMES, maps)
    assert (tmp_path / "gathered.csv").read_bytes() == (tmp_path / "one_pass.csv").read_bytes()
    assert sorted(os.listdir(tmp_path))[-2:] == ["gathered.csv", "one_pass.csv"]


def test_empty_shards_and_an_empty_manifest_gather(tmp_path):
    maps = random_maps(len(NAMES))
    settings = fragments_of(tmp_path, maps, shards=len(NAMES) + 9)  # 9 fragments hold no row
    gather_submission(tmp_path / "gathered.csv", NAMES, settings)
    write_submission(tmp_path / "one_pass.csv", NAMES, maps)
    assert (tmp_path / "gathered.csv").read_bytes() == (tmp_path / "one_pass.csv").read_bytes()
    empty = csv_settings(image_ids=(), fragments=settings.fragments[len(NAMES) :])
    assert gather_submission(tmp_path / "empty.csv", [], empty) == {"rows": 0}
    assert (tmp_path / "empty.csv").read_bytes() == b"image_id,PredictionString\n"


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 255), min_size=1, max_size=200))
def test_decode_row_inverts_encode_row(values):
    label_map = np.array(values, dtype=np.uint8)[None]
    decoded = decode_row(encode_row(label_map))
    assert decoded.tolist() == parse_prediction_string(encode_row(label_map)[:-1]).tolist()
    assert decoded.tolist() == values


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 9), min_size=1, max_size=200), st.integers(0, 400), st.binary())
def test_single_digit_rows_decode_as_the_general_reader_does(values, position, noise):
    """`single_digit_values` reads what `decode_row`'s general path reads, for one-digit rows,
    and returns None for every other row (which the general path then reads or refuses)."""
    row = encode_row(np.array(values, dtype=np.uint8)[None])
    assert single_digit_values(row).tolist() == values == general_decode(row).tolist()
    spliced = bytes(row)[:position] + noise + bytes(row)[position:]
    other = np.frombuffer(spliced, np.uint8)
    single = single_digit_values(other)
    assert single is None or single.tolist() == general_decode(other).tolist()


def general_decode(row):
    """`decode_row`'s general path on `row`: '10 ' put in front (a two-digit value, which the
    one-digit reader declines; canonical exactly when `row` is) and its value dropped."""
    values = decode_row(np.concatenate([np.frombuffer(b"10 ", np.uint8), row]))
    return None if values is None else values[1:]


@pytest.mark.parametrize("text", [b"1 2", b"1  2\n", b"01 2\n", b"1 x\n", b" 1\n", b"1234\n"])
def test_decode_row_refuses_non_canonical_rows(text):
    assert decode_row(np.frombuffer(text, np.uint8)) is None


def corrupt(path, offset_in_rows, byte):
    """Overwrite one byte of a fragment's rows."""
    fragment = RowFragment.load(path)
    with open(path, "r+b") as handle:
        handle.seek(int(fragment.offsets[0]) + offset_in_rows)
        handle.write(byte)


def test_a_corrupted_fragment_is_refused_before_the_final_name(tmp_path):
    maps = random_maps(len(NAMES), high=10)
    settings = fragments_of(tmp_path, maps)
    corrupt(settings.fragments[1], 4, b"7" if maps[1].ravel()[2] != 7 else b"8")
    target = tmp_path / "submission.csv"
    with pytest.raises(SegsubmitError, match=rf"{target}: line 3 differs from the row checked"):
        gather_submission(target, NAMES, settings)
    assert not target.exists() and not list(tmp_path.glob(".submission.csv.*"))


def test_fragments_not_matching_the_manifest_are_refused(tmp_path):
    maps = random_maps(len(NAMES))
    settings = fragments_of(tmp_path, maps)
    more = csv_settings(image_ids=range(42), fragments=settings.fragments)
    with pytest.raises(SegsubmitError, match=r"in no fragment: \[41\]"):
        gather_submission(tmp_path / "s.csv", [*NAMES, "new.jpg"], more)
    with pytest.raises(SegsubmitError, match="expected 4096 values in 0..10"):
        gather_submission(tmp_path / "s.csv", NAMES, csv_settings((64, 64), 11, range(41),
                                                                   settings.fragments))  # fmt: skip
    with pytest.raises(SegsubmitError, match="up to class 10; expected 1024 values in 0..4"):
        gather_submission(tmp_path / "s.csv", NAMES,
                          csv_settings((32, 32), 5, range(41), settings.fragments))  # fmt: skip
    (tmp_path / "bad.rows").write_bytes(b"not a zip")
    with pytest.raises(SegsubmitError, match="bad.rows: not a readable row fragment"):
        RowFragment.load(tmp_path / "bad.rows")


def test_a_map_with_a_class_out_of_range_gets_no_fragment(tmp_path):
    maps = random_maps(2, high=11)
    maps[1, 5, 5] = 11
    target = tmp_path / "0.rows"
    with pytest.raises(SegsubmitError, match=f"{target}: image 8: label map holds class 11, "):
        write_row_fragment(target, [7, 8], maps, csv_settings())
    with pytest.raises(SegsubmitError, match=r"image 7: label map is \(32, 31\), expected"):
        write_row_fragment(target, [7], [maps[0][:, :31]], csv_settings())
    assert os.listdir(tmp_path) == []


def test_a_fragment_holds_each_row_at_its_offset_and_refuses_truncation(tmp_path):
    maps = random_maps(70, high=200)  # 3 tasks of worker processes
    path = fragments_of(tmp_path, maps, shards=1, num_classes=256).fragments[0]
    fragment, data = RowFragment.load(path), path.read_bytes()
    for position, label_map in enumerate(maps):
        start, length = int(fragment.offsets[position]), int(fragment.lengths[position])
        assert data[start : start + length] == encode_row(label_map).tobytes()
    assert sorted(os.listdir(tmp_path)) == ["0.competition_csv.rows"]  # no part file is left
    path.write_bytes(data[:-5])  # a fragment cut short loses its trailer
    with pytest.raises(SegsubmitError, match="0.competition_csv.rows: not a readable row frag"):
        RowFragment.load(path)


def test_worker_processes_write_the_fragment_one_process_writes(tmp_path):
    """Many tasks on 3 worker processes, in order; a bad map in a late task still names its
    image and leaves no fragment."""
    maps = random_maps(200, high=12, size=(8, 8))
    ids = list(range(100, 300))
    fragments = {}
    for threads in (1, 3):
        path = tmp_path / f"{threads}.rows"
        settings = format_settings("competition_csv", {}, 12, (8, 8), threads, (), ())
        assert write_row_fragment(path, ids, iter(maps), settings) == 200
        fragments[threads] = RowFragment.load(path)
    one, three = fragments[1], fragments[3]
    assert np.array_equal(one.digests, three.digests)  # the sha1 of every row
    assert np.array_equal(one.lengths, three.lengths) and one.lengths.sum() > 0
    assert one.image_ids.tolist() == ids == three.image_ids.tolist()
    maps[180, 0, 0] = 12
    bad = tmp_path / "bad.rows"
    settings = format_settings("competition_csv", {}, 12, (8, 8), 3, (), ())
    with pytest.raises(SegsubmitError, match=f"{bad}: image 280: label map holds class 12"):
        write_row_fragment(bad, ids, iter(maps), settings)
    assert not bad.exists()
