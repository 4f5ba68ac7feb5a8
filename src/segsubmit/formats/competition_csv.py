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

import numpy as np

from ..atomic import atomic_path
from ..errors import SegsubmitError
from ..labels import batched

log = logging.getLogger(__name__)

HEADER = b"image_id,PredictionString\n"
THREADS = min(8, os.cpu_count() or 1)  # rows encoded / parsed at once (numpy releases the GIL)
ROWS_AT_ONCE = 256  # rows held in memory while writing or checking (~34 MB at 256x256)


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
    longer = bool(values.size) and values.max() >= 10
    ones = values % 10 if longer else values
    row = (ones + np.uint16(0x2030)).astype("<u2", copy=False).view(np.uint8)
    if longer:
        hundreds = np.flatnonzero(values >= 100)
        tens = np.flatnonzero(values >= 10)
        row = np.insert(
            row,
            np.concatenate([2 * hundreds, 2 * tens]),
            np.concatenate([values[hundreds] // 100 + 48, values[tens] // 10 % 10 + 48]),
        )
    row[-1] = 10
    return row


def checked_label_maps(label_maps, size, num_classes):
    """`label_maps`, each checked by `check_label_maps` as it passes (lazily)."""
    for index, label_map in enumerate(label_maps):
        check_label_maps([label_map], size, num_classes, first_index=index)
        yield label_map


def check_label_maps(label_maps, size, num_classes, first_index=0):
    """Every map is `size` (h, w) and holds class indices below `num_classes`."""
    for index, label_map in enumerate(label_maps, start=first_index):
        if label_map.shape != size:
            raise SegsubmitError(f"label map {index} is {label_map.shape}, expected {size}")
        if label_map.size and label_map.max() >= num_classes:
            raise SegsubmitError(
                f"label map {index} holds class {label_map.max()}, outside 0..{num_classes - 1}; "
                "the model predicts more classes than `classes` lists"
            )


def csv_size(file_names, label_maps):
    """Bytes of the CSV `write_submission` writes (for the message when the disk is full)."""
    names = sum(len(csv_field(file_name)) + 1 for file_name in file_names)
    values = sum(2 * m.size + int((m >= 10).sum()) + int((m >= 100).sum()) for m in label_maps)
    return len(HEADER) + names + values


def write_submission(csv_path, file_names, label_maps, threads=None, check=None, needed_bytes=None):
    """Write the CSV atomically and durably: rows in the given order; `label_maps` (any
    iterable of (h, w) uint8 maps, e.g. read lazily) are taken `ROWS_AT_ONCE` at a time and
    encoded by `threads` threads (numpy releases the GIL), so memory does not grow with N.
    `check(tmp_path)` runs on the finished temporary file before it is renamed into place (a
    file under the final name has passed it); its result is returned. `needed_bytes`: the
    file's size for a full-disk message (default: computed from `label_maps` if a sequence)."""
    if needed_bytes is None and isinstance(label_maps, list | tuple | np.ndarray):
        needed_bytes = lambda: csv_size(file_names, label_maps)  # noqa: E731
    with atomic_path(csv_path, needed_bytes) as tmp_path:
        with open(tmp_path, "wb") as handle, ThreadPoolExecutor(threads or THREADS) as pool:
            handle.write(HEADER)
            names = iter(file_names)
            for batch in batched(label_maps, ROWS_AT_ONCE):
                for row in pool.map(encode_row, batch):
                    handle.write(csv_field(next(names)) + b",")
                    handle.write(row)
            if next(names, None) is not None:
                raise ValueError(f"{csv_path}: fewer label maps than file names")
            handle.flush()
            os.fsync(handle.fileno())
        return check(tmp_path) if check else None


DIGIT_OR_SPACE = np.zeros(256, dtype=bool)
DIGIT_OR_SPACE[[32, *range(48, 58)]] = True


def continues(joined, positions):
    """`joined` at `positions`, False past its end."""
    inside = positions < joined.size
    result = np.zeros(positions.size, dtype=bool)
    result[inside] = joined[positions[inside]]
    return result


def prediction_summary(text):
    """(value count, largest value) of a canonical PredictionString (str or ASCII bytes):
    space-separated ints of at most 3 digits; None otherwise. Byte-level passes only, no
    array of values: the re-read check's inner loop (`segsubmit.testing.parse_prediction_string`
    is the reference it is tested against)."""
    try:
        data = text.encode("ascii") if isinstance(text, str) else text
    except UnicodeEncodeError:
        return None
    chars = np.frombuffer(data, dtype=np.uint8)
    if not chars.size or chars[0] == 32 or chars[-1] == 32 or not DIGIT_OR_SPACE[chars].all():
        return None
    digits = chars != 32
    if not (digits[1:] | digits[:-1]).all():  # two spaces in a row: an empty value
        return None
    count = chars.size - int(np.count_nonzero(digits)) + 1
    joined = digits[1:] & digits[:-1]  # a digit followed by a digit
    if not joined.any():
        return count, int(chars.max()) - 48
    starts = np.flatnonzero(joined & np.concatenate(([True], ~digits[:-2])))  # 2+ digits
    three = continues(joined, starts + 1)
    if continues(joined, starts[three] + 2).any():  # 4 digits or more: not canonical
        return None
    values = (chars[starts] - 48).astype(np.int64) * 10 + (chars[starts + 1] - 48)
    values[three] = values[three] * 10 + (chars[starts[three] + 2] - 48)
    alone = (
        digits & ~np.concatenate(([False], digits[:-1])) & ~np.concatenate((digits[1:], [False]))
    )
    largest_alone = int(chars[alone].max()) - 48 if alone.any() else 0  # "00 7": 7, not 0
    return count, max(int(values.max()), largest_alone)


def _row_problem(row, expected_name, pixel_count, num_classes):
    if len(row) != 2:
        return f"has {len(row)} fields, expected 2"
    if row[0] != expected_name:
        return f"image_id {row[0]!r}, expected {expected_name!r} (manifest order)"
    summary = prediction_summary(row[1])
    if summary is None:
        return "PredictionString is not space-separated integers"
    count, largest = summary
    if count != pixel_count:
        return f"has {count} values, expected {pixel_count}"
    if largest >= num_classes:
        return f"has class {largest}, outside 0..{num_classes - 1}"
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


def quoted_field_end(record):
    """Index of the quote closing the quoted field that opens `record`, or -1 while the field
    is still open (it may hold newlines); `""` inside is an escaped quote."""
    start = 1
    while True:
        end = record.find(b'"', start)
        if end == -1 or record[end + 1 : end + 2] != b'"':
            return end
        start = end + 2


BOM = b"\xef\xbb\xbf"


def format_notes(data):
    """One line for each deviation from the format segsubmit writes that the competition's
    reader (pandas `read_csv`) tolerates: a byte-order mark, CRLF line ends, trailing blank
    lines. `validate_submission` reads such files as pandas does."""
    notes = []
    if data.startswith(BOM):
        notes.append(
            "starts with a UTF-8 byte-order mark; pandas read_csv drops it (the header still "
            "reads image_id), readers that are not BOM-aware see '\\ufeffimage_id'"
        )
    if b"\r\n" in data[: data.find(b"\n") + 1 or None]:
        notes.append(
            "has CRLF (\\r\\n) line ends; pandas read_csv reads them as plain line ends, "
            "so the values are unchanged"
        )
    if data.endswith((b"\n\n", b"\n\r\n")):
        notes.append(
            "ends with blank lines; pandas read_csv skips them (skip_blank_lines), so they add "
            "no rows"
        )
    return notes


def lines_as_pandas_reads(lines):
    """Byte lines without a leading byte-order mark and without blank lines, as pandas
    `read_csv` (skip_blank_lines) reads them."""
    for number, line in enumerate(lines):
        line = line.removeprefix(BOM) if number == 0 else line
        if line not in (b"\n", b"\r\n"):
            yield line


def iter_csv_records(lines):
    """The fields of each CSV record from an iterator of byte lines. Unquoted lines (the usual
    case) are split with `partition`, several times faster than the csv module on 131 kB
    fields, and fields after the first stay bytes; a record opening with a quote (a file name
    holding a comma, quote or newline) is gathered over its lines and parsed by the csv
    module."""
    csv.field_size_limit(sys.maxsize)
    for line in lines:
        if line.startswith(b'"'):
            while quoted_field_end(line) == -1:
                line += next(lines, b"") or b'"'  # an unterminated quote ends at end of file
            yield next(csv.reader([line.decode("utf-8")]))
        else:
            yield split_fields(line.rstrip(b"\n").removesuffix(b"\r"))


def validate_submission(
    csv_path, expected_file_names, num_classes, pixel_count, threads=None, name=None
):
    """Re-read the CSV, streaming, and check header, row order, value count and range; error on
    the first problem, naming the line (and the file as `name`, default `csv_path`). Rows are
    parsed `ROWS_AT_ONCE` at a time by `threads` threads (numpy releases the GIL): memory does
    not grow with the file."""
    shown = name or csv_path
    try:
        with open(csv_path, "rb") as handle, ThreadPoolExecutor(threads or THREADS) as pool:
            return _validate_records(
                shown, iter_csv_records(lines_as_pandas_reads(handle)), expected_file_names, pool,
                lambda row, expected: _row_problem(row, expected, pixel_count, num_classes),
            )  # fmt: skip
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise SegsubmitError(f"{shown}: cannot read as CSV ({err})") from err


def _validate_records(csv_path, records, expected_file_names, pool, row_problem):
    """Header, then each row against the manifest name at its position; the row count."""
    header = next(records, None)
    if header is None or [as_text(field) for field in header] != ["image_id", "PredictionString"]:
        raise SegsubmitError(f"{csv_path}: header must be 'image_id,PredictionString'")
    rows = 0
    for batch in batched(records, ROWS_AT_ONCE):
        names = expected_file_names[rows : rows + len(batch)]
        problems = pool.map(row_problem, batch[: len(names)], names)
        for line, problem in enumerate(problems, start=rows + 2):
            if problem:
                raise SegsubmitError(f"{csv_path}: line {line} {problem}")
        rows += len(batch)
    if rows != len(expected_file_names):
        raise SegsubmitError(
            f"{csv_path}: {rows} rows, but the manifest lists {len(expected_file_names)} images"
        )
    return rows


def write_checked_submission(csv_path, file_names, label_maps, settings):
    """The CSV of the maps `label_maps()` yields (in `file_names` order), each map checked
    (size, classes in range) before its row is written, under a temporary name; that file is
    re-read and checked (`validate_submission`) and only then renamed into place: a file named
    submission.csv has passed the check. Returns {"rows": row count}."""
    size, num_classes, threads = tuple(settings.size), settings.num_classes, settings.threads

    def check(tmp_path):
        pixels = size[0] * size[1]
        return validate_submission(
            tmp_path, file_names, num_classes, pixels, threads, name=csv_path
        )

    rows = write_submission(
        csv_path,
        file_names,
        checked_label_maps(label_maps(), size, num_classes),
        threads,
        check=check,
        needed_bytes=lambda: csv_size(file_names, label_maps()),
    )
    log.info("submission: %d rows -> %s (re-read and checked)", rows, csv_path)
    return {"rows": rows}


def read_label_maps(csv_path, size):
    """(image_id, uint8 map of `size` (h, w)) of each row of a submission CSV, in file order;
    for a file `validate_submission` has passed (it reads the file as pandas does)."""
    with open(csv_path, "rb") as handle:
        records = iter_csv_records(lines_as_pandas_reads(handle))
        next(records)  # the header
        for image_id, values in records:
            yield as_text(image_id), np.array(values.split(), dtype=np.uint8).reshape(size)
