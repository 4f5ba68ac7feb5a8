"""submission.csv: header `image_id,PredictionString`, one row per image in manifest order,
65536 space-separated class indices per row (256x256, row-major).

Rows are built as bytes with numpy (byte-identical to the baseline's `' '.join(str(e) ...)` +
pandas `to_csv(index=False)`, ~20x faster) and checked by `validate_submission`.
"""

import csv
import io
import os
import sys
from pathlib import Path

import numpy as np

from .atomic import atomic_path
from .errors import SegsubmitError

HEADER = b"image_id,PredictionString\n"


def csv_field(text):
    """`text` quoted the way pandas/csv QUOTE_MINIMAL writes it."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow([text])
    return buffer.getvalue()[:-1].encode("utf-8")


def encode_row(label_map):
    """Bytes of `' '.join(str(v) for v in label_map.ravel()) + '\\n'`, built with numpy.

    Each value first becomes the little-endian uint16 `(' ' << 8) | (ones digit + '0')`; tens and
    hundreds digits (class 10 and up) are inserted in front of their value; the last space
    becomes the newline.
    """
    values = np.ascontiguousarray(label_map, dtype=np.uint8).ravel()
    row = (values % 10 + np.uint16(0x2030)).astype("<u2").view(np.uint8)
    if values.size and values.max() >= 10:
        hundreds = np.flatnonzero(values >= 100)
        tens = np.flatnonzero(values >= 10)
        row = np.insert(
            row,
            np.concatenate([2 * hundreds, 2 * tens]),
            np.concatenate([values[hundreds] // 100 + 48, values[tens] // 10 % 10 + 48]),
        )
    row[-1] = 10
    return row


def check_label_maps(label_maps, size, num_classes):
    """Every map is `size` (h, w) and holds class indices below `num_classes`."""
    for index, label_map in enumerate(label_maps):
        if label_map.shape != size:
            raise SegsubmitError(f"label map {index} is {label_map.shape}, expected {size}")
        if label_map.size and label_map.max() >= num_classes:
            raise SegsubmitError(
                f"label map {index} holds class {label_map.max()}, outside 0..{num_classes - 1}; "
                "the model predicts more classes than `classes` lists"
            )


def write_submission(csv_path, file_names, label_maps):
    """Write the CSV atomically: rows in the given order; `label_maps` are (h, w) uint8."""
    with atomic_path(csv_path) as tmp_path, open(tmp_path, "wb") as handle:
        handle.write(HEADER)
        for file_name, label_map in zip(file_names, label_maps, strict=True):
            handle.write(csv_field(file_name) + b",")
            handle.write(encode_row(label_map))
        handle.flush()
        os.fsync(handle.fileno())


def write_submission_baseline(csv_path, file_names, label_maps):
    """The competition baseline's writer (pandas, str.join): the reference for tests/benchmarks."""
    import pandas as pd

    rows = [" ".join(str(e) for e in m.flatten().tolist()) for m in label_maps]
    frame = pd.DataFrame({"image_id": list(file_names), "PredictionString": rows})
    frame.to_csv(csv_path, index=False)


def parse_prediction_string(text):
    """Class indices of one PredictionString; None if it is not canonical space-separated ints."""
    try:
        chars = np.frombuffer(text.encode("ascii"), dtype=np.uint8)
    except UnicodeEncodeError:
        return None
    if not chars.size or chars[0] == 32 or chars[-1] == 32:
        return None
    space = chars == 32
    if not (space | ((chars >= 48) & (chars <= 57))).all():
        return None
    starts = np.flatnonzero(np.r_[True, space[:-1]])
    ends = np.flatnonzero(np.r_[space[1:], True]) + 1
    lengths = ends - starts
    if space[starts].any() or lengths.max() > 3:
        return None
    values = np.zeros(starts.size, dtype=np.int64)
    for offset in range(3):
        has_digit = lengths > offset
        digit = chars[np.minimum(starts + offset, chars.size - 1)].astype(np.int64) - 48
        values = np.where(has_digit, values * 10 + digit, values)
    return values


def _row_problem(row, expected_name, pixel_count, num_classes):
    if len(row) != 2:
        return f"has {len(row)} fields, expected 2"
    if row[0] != expected_name:
        return f"image_id {row[0]!r}, expected {expected_name!r} (manifest order)"
    values = parse_prediction_string(row[1])
    if values is None:
        return "PredictionString is not space-separated integers"
    if values.size != pixel_count:
        return f"has {values.size} values, expected {pixel_count}"
    if values.max() >= num_classes:
        return f"has class {values.max()}, outside 0..{num_classes - 1}"
    return None


def read_csv_rows(csv_path):
    """The CSV's rows as lists of fields; a plain split when nothing is quoted (the usual case,
    several times faster than the csv module on 131 kB fields), the csv module otherwise."""
    data = Path(csv_path).read_bytes()
    if b'"' in data or b"\r" in data:
        csv.field_size_limit(sys.maxsize)
        return list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return [line.decode("utf-8").split(",") for line in lines]


def validate_submission(csv_path, expected_file_names, num_classes, pixel_count=256 * 256):
    """Re-read the CSV and check header, row order, value count and range; error on the first
    problem, naming the row."""
    try:
        rows = read_csv_rows(csv_path)
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise SegsubmitError(f"{csv_path}: cannot read as CSV ({err})") from err
    if not rows or rows[0] != ["image_id", "PredictionString"]:
        raise SegsubmitError(f"{csv_path}: header must be 'image_id,PredictionString'")
    body = rows[1:]
    if len(body) != len(expected_file_names):
        raise SegsubmitError(
            f"{csv_path}: {len(body)} rows, but the manifest lists "
            f"{len(expected_file_names)} images"
        )
    for line, (row, name) in enumerate(zip(body, expected_file_names, strict=True), start=2):
        problem = _row_problem(row, name, pixel_count, num_classes)
        if problem:
            raise SegsubmitError(f"{csv_path}: line {line} {problem}")
    return len(body)
