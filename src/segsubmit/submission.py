"""submission.csv: header `image_id,PredictionString`, one row per image in manifest order,
65536 space-separated class indices per row (256x256, row-major).

Rows are built as bytes with numpy (byte-identical to the baseline's `' '.join(str(e) ...)` +
pandas `to_csv(index=False)`, ~20x faster: `segsubmit.testing.write_submission_baseline` is that
baseline) and the finished file is re-read and checked by `validate_submission`.
"""

import csv
import io
import logging
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from .atomic import atomic_path, write_json
from .errors import SegsubmitError
from .labels import maps_in_order
from .manifest import read_manifest
from .provenance import collect_provenance

log = logging.getLogger(__name__)

HEADER = b"image_id,PredictionString\n"
THREADS = min(8, os.cpu_count() or 1)  # rows encoded / parsed at once (numpy releases the GIL)


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


def write_submission(csv_path, file_names, label_maps, threads=None):
    """Write the CSV atomically and durably: rows in the given order; `label_maps` are (h, w)
    uint8. Rows are encoded by `threads` threads (numpy releases the GIL), written in order."""
    with (
        atomic_path(csv_path) as tmp_path,
        open(tmp_path, "wb") as handle,
        ThreadPoolExecutor(threads or THREADS) as pool,
    ):
        handle.write(HEADER)
        rows = pool.map(encode_row, label_maps)
        for file_name, row in zip(file_names, rows, strict=True):
            handle.write(csv_field(file_name) + b",")
            handle.write(row)
        handle.flush()
        os.fsync(handle.fileno())


def parse_prediction_string(text):
    """Class indices of one PredictionString (str or ASCII bytes); None if it is not canonical
    space-separated ints of at most 3 digits. Rows of one-digit classes take a 3-pass path."""
    try:
        data = text.encode("ascii") if isinstance(text, str) else text
    except UnicodeEncodeError:
        return None
    chars = np.frombuffer(data, dtype=np.uint8)
    if not chars.size or chars[0] == 32 or chars[-1] == 32:
        return None
    separators = np.flatnonzero(chars == 32)
    if not ((chars - np.uint8(48) < 10) | (chars == 32)).all():
        return None
    if 2 * separators.size + 1 == chars.size and (chars[1::2] == 32).all():
        return chars[::2] - np.uint8(48)  # every value one digit
    starts = np.concatenate(([0], separators + 1))
    lengths = np.concatenate((separators, [chars.size])) - starts
    if lengths.min() == 0 or lengths.max() > 3:
        return None
    values = (chars[starts] - np.uint8(48)).astype(np.int64)
    for offset in (1, 2):  # the few multi-digit values, digit by digit
        longer = np.flatnonzero(lengths > offset)
        values[longer] = values[longer] * 10 + (chars[starts[longer] + offset] - np.uint8(48))
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


def as_text(field):
    return field.decode("utf-8", "replace") if isinstance(field, bytes) else field


def split_fields(line):
    """An unquoted CSV line's fields: the first decoded, the rest bytes (`partition` and `in`
    find the commas far faster than `split` scans a 131 kB field)."""
    name, comma, rest = line.partition(b",")
    if not comma:
        return [name.decode("utf-8")]
    if b"," in rest:
        return [name.decode("utf-8"), *rest.split(b",")]
    return [name.decode("utf-8"), rest]


def read_csv_rows(csv_path):
    """The CSV's rows as lists of fields; a plain split when nothing is quoted (the usual case,
    several times faster than the csv module on 131 kB fields; fields after the first stay
    bytes), the csv module otherwise."""
    data = Path(csv_path).read_bytes()
    if b'"' in data or b"\r" in data:
        csv.field_size_limit(sys.maxsize)
        return list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return [split_fields(line) for line in lines]


def validate_submission(
    csv_path, expected_file_names, num_classes, pixel_count=256 * 256, threads=None
):
    """Re-read the CSV and check header, row order, value count and range; error on the first
    problem, naming the row. Rows are parsed by `threads` threads (numpy releases the GIL)."""
    try:
        rows = read_csv_rows(csv_path)
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise SegsubmitError(f"{csv_path}: cannot read as CSV ({err})") from err
    if not rows or [as_text(field) for field in rows[0]] != ["image_id", "PredictionString"]:
        raise SegsubmitError(f"{csv_path}: header must be 'image_id,PredictionString'")
    body = rows[1:]
    if len(body) != len(expected_file_names):
        raise SegsubmitError(
            f"{csv_path}: {len(body)} rows, but the manifest lists "
            f"{len(expected_file_names)} images"
        )

    def row_problem(row_and_name):
        return _row_problem(*row_and_name, pixel_count, num_classes)

    with ThreadPoolExecutor(threads or THREADS) as pool:
        problems = pool.map(row_problem, zip(body, expected_file_names, strict=True))
        for line, problem in enumerate(problems, start=2):
            if problem:
                raise SegsubmitError(f"{csv_path}: line {line} {problem}")
    return len(body)


def write_submission_stage(manifest_path, resized_paths, csv_path, num_classes, size, threads=None):
    """Check the maps (one per manifest image, `size`, classes in range), then write
    submission.csv in manifest order."""
    entries = read_manifest(manifest_path)
    label_maps = maps_in_order([entry["id"] for entry in entries], resized_paths)
    check_label_maps(label_maps, tuple(size), num_classes)
    write_submission(csv_path, [entry["file_name"] for entry in entries], label_maps, threads)
    log.info("submission: %d rows -> %s", len(entries), csv_path)


def validate_stage(
    csv_path, manifest_path, report_path, num_classes, size, threads=None, provenance=None
):
    """Re-read the finished submission.csv and record that it passed (a pass over the file as
    written, not over the maps it was written from), with what made it (`provenance`)."""
    file_names = [entry["file_name"] for entry in read_manifest(manifest_path)]
    rows = validate_submission(csv_path, file_names, num_classes, size[0] * size[1], threads)
    report = {"csv": str(csv_path), "rows": rows, "valid": True}
    write_json(report_path, {**report, **({"provenance": provenance} if provenance else {})})
    log.info("validate: %s is a valid submission (%d rows)", csv_path, rows)


def submission_stage(
    manifest_path,
    resized_paths,
    csv_path,
    report_path,
    num_classes,
    size,
    threads=None,
    provenance_settings=None,
    model_files=None,
):
    """Stage entry: `write_submission_stage`, then `validate_stage` on the finished file (one
    job: one process start fewer on the run's critical path), each with `threads` threads;
    the report records the provenance of `provenance_settings` and `model_files`."""
    write_submission_stage(manifest_path, resized_paths, csv_path, num_classes, size, threads)
    provenance = collect_provenance(provenance_settings or {}, model_files or {})
    validate_stage(csv_path, manifest_path, report_path, num_classes, size, threads, provenance)
