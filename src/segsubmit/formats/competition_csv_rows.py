"""submission.csv from per-shard row fragments: each shard's rows are encoded, decoded back and
compared with its maps in the resize job (off the run's critical path when shards overlap
inference), so the submission job only gathers them in manifest order and re-reads the file.

A fragment (`Layout.fragment`) is one file: the rows (each image's PredictionString and a
newline, in shard order) from its first byte, then `index` (a .npy: per row image id, byte
length, value count, largest value) and `digests` (a .npy: the sha1 of each row, taken once it
had decoded to its map), then `TRAILER` (its magic, the rows' size and where the two arrays
start). Worker processes write each task's rows into a part file of their own, which the main
process copies into the fragment in the kernel, so it moves no row bytes itself. The gathered
CSV is byte-identical to `write_submission`'s: the same header, `csv_field` names and
`encode_row` rows. Before its final name the file is re-read: header, each name in manifest
order, each row's sha1 against its fragment's, the file's length; the value counts and classes
were checked against the maps and are checked again from the index.
"""

import collections
import errno
import hashlib
import itertools
import logging
import multiprocessing
import os
import struct
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from ..atomic import atomic_path, part_path, remove_parts
from ..errors import SegsubmitError
from ..labels import batched
from .competition_csv import HEADER, THREADS, csv_field, encode_row

log = logging.getLogger(__name__)

TRAILER = struct.Struct("<8sQQQ")  # magic, rows' size, offset of index, offset of digests
MAGIC = b"SSROWS01"
ROWS_PER_TASK = 32  # rows one thread copies or re-reads at a time (~4 MB at 256x256)


def single_digit_values(row):
    """Class indices of an encoded row of one-digit values ('d d ... d' and a newline: a digit
    at every even byte, a space at every odd one but the last), or None for any other row."""
    if row.size < 2 or row.size % 2 or row[-1] != 10:
        return None
    values, separators = row[0::2] - np.uint8(48), row[1::2]
    if (values > 9).any() or (separators[:-1] != 32).any():
        return None
    return values


def decode_row(row):
    """Class indices of one encoded row (uint8 bytes of a PredictionString ending with a
    newline), or None when it is not canonical (1-3 digit values without leading zeros, one
    space between them). Each value is the digit before its separator, plus the tens and
    hundreds digits before that of the few longer values (rows of one-digit values only, the
    usual case below 10 classes, are read by `single_digit_values`, a few passes fewer)."""
    single = single_digit_values(row)
    if single is not None:
        return single
    if row.size < 2 or row[-1] != 10 or row.max() > 57:
        return None
    digit = row >= 48
    body, digits = row[:-1], digit[:-1]
    if (~digits & (body != 32)).any() or not digit[0] or (~digits & ~digit[1:]).any():
        return None  # a character other than digits and spaces, or an empty value
    followed = digits & digit[1:]
    if (followed[:-2] & followed[1:-1] & followed[2:]).any():
        return None  # four digits or more
    ends = np.flatnonzero(~digit)  # the separator after each value (row[-1] ends the first's -1)
    values = (row[ends - 1] - np.uint8(48)).astype(np.uint16)
    longer = np.flatnonzero(digit[ends - 2])
    tens = ends[longer] - 2
    values[longer] += (row[tens] - np.uint8(48)) * np.uint16(10)
    three = digit[tens - 1]
    values[longer[three]] += (row[tens[three] - 1] - np.uint8(48)) * np.uint16(100)
    if (row[np.where(three, tens - 1, tens)] == 48).any():
        return None  # a leading zero
    return values


def checked_row(image_id, label_map, size, num_classes):
    """(row bytes, sha1 digest, index entry) of a map of `size` with classes below
    `num_classes`, the row decoded back and compared with the map before it is kept."""
    if label_map.shape != size:
        raise SegsubmitError(f"image {image_id}: label map is {label_map.shape}, expected {size}")
    largest = int(label_map.max()) if label_map.size else 0
    if largest >= num_classes:
        raise SegsubmitError(
            f"image {image_id}: label map holds class {largest}, outside 0..{num_classes - 1}; "
            "the model predicts more classes than `classes` lists"
        )
    row = encode_row(label_map)
    values = decode_row(row)
    if values is None or not np.array_equal(values, label_map.ravel()):
        raise SegsubmitError(f"image {image_id}: its encoded row does not decode to its map")
    return row, hashlib.sha1(row).digest(), (image_id, row.size, label_map.size, largest)


def write_checked_rows(part_file, items, size, num_classes):
    """One worker task: `checked_row` of each (image id, map) of `items`, the rows written
    into the file `part_file` one after another. Returns the (digest, index entry) of each."""
    results = []
    with open(part_file, "wb") as part:
        for image_id, label_map in items:
            row, digest, entry = checked_row(image_id, label_map, size, num_classes)
            part.write(row)
            results.append((digest, entry))
    return results


ROWS_PER_PROCESS = 32  # rows of one worker task (~2 MB of maps sent, ~4 MB of rows written)


def written_row_groups(part_files, image_ids, label_maps, settings):
    """(part path, `write_checked_rows` results) of each task, in order: `settings.threads`
    worker processes encode, check and write tasks of `ROWS_PER_PROCESS` rows (numpy's many
    short calls per row hold the GIL too often for threads to scale). Tasks are submitted as
    their maps arrive, up to two per process in flight, so reading the next maps overlaps the
    workers' encoding; one process: in this one. `part_files`: an endless iterator of part
    file names."""
    size, num_classes = tuple(settings.size), settings.num_classes
    tasks = batched(zip(image_ids, label_maps, strict=True), ROWS_PER_PROCESS)
    processes = settings.threads or THREADS
    if processes == 1:
        for items in tasks:
            part_file = next(part_files)
            yield part_file, write_checked_rows(part_file, items, size, num_classes)
        return
    fork = multiprocessing.get_context("fork")  # the rule's script has no __main__ guard
    with ProcessPoolExecutor(processes, mp_context=fork) as pool:
        in_flight = collections.deque()
        for items in tasks:
            part_file = next(part_files)
            future = pool.submit(write_checked_rows, part_file, items, size, num_classes)
            in_flight.append((part_file, future))
            if len(in_flight) == 2 * processes:
                part_file, future = in_flight.popleft()
                yield part_file, future.result()
        for part_file, future in in_flight:
            yield part_file, future.result()


def append_part(part_file, target, offset):
    """Copy the part file into `target` (a descriptor) at `offset` and delete it; its size."""
    source = os.open(part_file, os.O_RDONLY)
    try:
        count = os.fstat(source).st_size
        copy_range(source, target, count, 0, offset)
    finally:
        os.close(source)
        os.unlink(part_file)
    return count


def write_row_fragment(path, image_ids, label_maps, settings):
    """The fragment of one shard: the rows of `label_maps` (an iterable, in `image_ids`'
    order), each map checked (size, classes) and its row decoded back and compared with it
    (`written_row_groups`), then the index, the digests and the trailer; written atomically.
    Returns the row count."""
    index, digests = [], []
    with atomic_path(path) as tmp_path, open(tmp_path, "wb") as handle:
        part_paths = (part_path(tmp_path, task) for task in itertools.count())
        rows_size = 0
        try:
            for part, results in written_row_groups(part_paths, image_ids, label_maps,
                                                    settings):  # fmt: skip
                rows_size += append_part(part, handle.fileno(), rows_size)
                for digest, entry in results:
                    digests.append(np.frombuffer(digest, np.uint8))
                    index.append(entry)
        except SegsubmitError as err:
            raise SegsubmitError(f"{path}: {err}") from err
        finally:
            remove_parts(tmp_path)
        handle.seek(rows_size)
        index_offset = handle.tell()
        np.lib.format.write_array(handle, np.array(index, np.int64).reshape(-1, 4))
        digests_offset = handle.tell()
        np.lib.format.write_array(handle, np.array(digests, np.uint8).reshape(-1, 20))
        handle.write(TRAILER.pack(MAGIC, rows_size, index_offset, digests_offset))
    return len(index)


def read_fragment_arrays(path):
    """(index, digests) of the fragment at `path`; ValueError when its trailer, arrays or sizes
    disagree."""
    with open(path, "rb") as handle:
        end = handle.seek(0, os.SEEK_END)
        if end < TRAILER.size:
            raise ValueError(f"{end} bytes, shorter than a fragment's trailer")
        handle.seek(end - TRAILER.size)
        magic, rows_size, index_offset, digests_offset = TRAILER.unpack(handle.read(TRAILER.size))
        if magic != MAGIC or not rows_size <= index_offset < digests_offset < end:
            raise ValueError("no fragment trailer")
        handle.seek(index_offset)
        index = np.lib.format.read_array(handle, allow_pickle=False)
        handle.seek(digests_offset)
        digests = np.lib.format.read_array(handle, allow_pickle=False)
    if index.ndim != 2 or index.shape[1] != 4 or digests.shape != (len(index), 20):
        raise ValueError(f"index {index.shape} and digests {digests.shape} disagree")
    if int(index[:, 1].sum()) != rows_size:
        raise ValueError(f"the index's row lengths do not sum to the rows' {rows_size} bytes")
    return index, digests


@dataclass(frozen=True)
class RowFragment:
    """A fragment's index: where each row starts in the file, its length, value count, largest
    value and sha1."""

    path: str
    image_ids: np.ndarray
    offsets: np.ndarray
    lengths: np.ndarray
    values: np.ndarray
    largest: np.ndarray
    digests: np.ndarray

    @classmethod
    def load(cls, path):
        """The index of the fragment at `path`; one line when it is not a readable fragment."""
        try:
            index, digests = read_fragment_arrays(path)
        except (OSError, ValueError, struct.error) as err:
            raise SegsubmitError(
                f"{path}: not a readable row fragment ({err}); delete it and run again (its "
                "resize job writes it)"
            ) from err
        image_ids, lengths, values, largest = (index[:, column] for column in range(4))
        offsets = np.cumsum(lengths) - lengths
        return cls(str(path), image_ids, offsets, lengths, values, largest, digests)


@dataclass(frozen=True)
class RowPlan:
    """Where each row of the CSV comes from and goes: its fragment (position in the fragment
    list), offset and length there, its offset in the CSV, its name field (with the comma) and
    its sha1."""

    fragments: list
    names: list
    sources: np.ndarray  # fragment position
    source_offsets: np.ndarray
    lengths: np.ndarray
    targets: np.ndarray  # offset of the name field in the CSV
    digests: np.ndarray
    size: int


def check_fragment_rows(fragment, pixels, num_classes):
    """Every row of `fragment` holds `pixels` values below `num_classes` (its index says)."""
    wrong = np.flatnonzero((fragment.values != pixels) | (fragment.largest >= num_classes))
    if wrong.size:
        row = int(wrong[0])
        raise SegsubmitError(
            f"{fragment.path}: image {int(fragment.image_ids[row])} has "
            f"{int(fragment.values[row])} values up to class {int(fragment.largest[row])}; "
            f"expected {pixels} values in 0..{num_classes - 1} (made for another resize.size "
            "or classes?); run again: its resize job rewrites it"
        )


def plan_rows(fragments, file_names, image_ids, settings):
    """The `RowPlan` of the CSV of `file_names` / `image_ids` (manifest order) from
    `fragments`; one line when a fragment lacks an image, holds one the manifest does not,
    or was made for another size or fewer classes."""
    for fragment in fragments:
        check_fragment_rows(fragment, settings.size[0] * settings.size[1], settings.num_classes)
    where = {
        image_id: (number, position)
        for number, fragment in enumerate(fragments)
        for position, image_id in enumerate(fragment.image_ids.tolist())
    }
    if len(where) != len(image_ids) or set(where) != set(image_ids):
        extra = sorted(set(where) - set(image_ids))[:3]
        missing = sorted(set(image_ids) - set(where))[:3]
        raise SegsubmitError(
            f"{', '.join(f.path for f in fragments)}: the row fragments hold {len(where)} images "
            f"(not in the manifest: {extra}), the manifest {len(image_ids)} (in no fragment: "
            f"{missing}); run again: the resize jobs rewrite them"
        )
    located = [
        (number, fragments[number], position) for number, position in map(where.get, image_ids)
    ]
    names = [csv_field(name) + b"," for name in file_names]
    lengths = np.array([f.lengths[p] for _, f, p in located], np.int64)
    ends = len(HEADER) + np.cumsum(np.array([len(n) for n in names], np.int64) + lengths)
    return RowPlan(
        fragments,
        names,
        sources=np.array([number for number, _, _ in located], np.int64),
        source_offsets=np.array([f.offsets[p] for _, f, p in located], np.int64),
        lengths=lengths,
        targets=ends - lengths - np.array([len(n) for n in names], np.int64),
        digests=np.array([f.digests[p] for _, f, p in located], np.uint8).reshape(-1, 20),
        size=int(ends[-1]) if len(ends) else len(HEADER),
    )


NO_COPY_FILE_RANGE = (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP)


def copy_range(source, target, count, source_offset, target_offset):
    """Copy `count` bytes between file descriptors at the given offsets (in the kernel with
    `copy_file_range` where the file systems allow, else through a buffer)."""
    while count:
        try:
            copied = os.copy_file_range(source, target, count, source_offset, target_offset)
        except OSError as err:
            if err.errno not in NO_COPY_FILE_RANGE:
                raise
            copied = os.pwrite(target, os.pread(source, count, source_offset), target_offset)
        if not copied:
            raise OSError(errno.EIO, f"short copy: {count} bytes left")
        count, source_offset, target_offset = (count - copied, source_offset + copied,
                                               target_offset + copied)  # fmt: skip


def copy_rows(plan, sources, target, rows):
    """Write the name fields and copy the rows `rows` (positions) of `plan` into `target`."""
    for row in rows:
        os.pwrite(target, plan.names[row], int(plan.targets[row]))
        start = int(plan.targets[row]) + len(plan.names[row])
        copy_range(sources[plan.sources[row]], target, int(plan.lengths[row]),
                   int(plan.source_offsets[row]), start)  # fmt: skip


def row_spans(count):
    """Consecutive ranges of row positions, one thread's work each."""
    return [
        range(first, min(first + ROWS_PER_TASK, count)) for first in range(0, count, ROWS_PER_TASK)
    ]


def first_problem(plan, handle, rows):
    """(line, problem) of the first of `rows` (positions) whose name field or row bytes in the
    file `handle` (a descriptor) differ from the plan; None when all match."""
    last = rows[-1]
    start = int(plan.targets[rows[0]])
    stop = int(plan.targets[last]) + len(plan.names[last]) + int(plan.lengths[last])
    data = memoryview(os.pread(handle, stop - start, start))
    for row in rows:
        name_start = int(plan.targets[row]) - start
        row_start = name_start + len(plan.names[row])
        if data[name_start:row_start] != plan.names[row]:
            shown = bytes(data[name_start:row_start]).decode("utf-8", "replace")
            return (
                row + 2,
                f"starts {shown!r}, expected {plan.names[row].decode()!r} (manifest order)",
            )
        row_bytes = data[row_start : row_start + int(plan.lengths[row])]
        if hashlib.sha1(row_bytes).digest() != plan.digests[row].tobytes():
            fragment = plan.fragments[plan.sources[row]].path
            return row + 2, f"differs from the row checked into {fragment} (sha1)"
    return None


def check_gathered(path, plan, threads, name):
    """Re-read the gathered CSV at `path`: its length, header, and every row's name and sha1
    against `plan`, `threads` spans at once; one line naming `name` and the first bad line."""
    size = os.path.getsize(path)
    if size != plan.size:
        raise SegsubmitError(f"{name}: {size} bytes, expected {plan.size} (a short write?)")
    handle = os.open(path, os.O_RDONLY)
    try:
        if os.pread(handle, len(HEADER), 0) != HEADER:
            raise SegsubmitError(f"{name}: header must be 'image_id,PredictionString'")
        with ThreadPoolExecutor(threads or THREADS) as pool:
            spans = row_spans(len(plan.names))
            for problem in pool.map(lambda rows: first_problem(plan, handle, rows), spans):
                if problem:
                    raise SegsubmitError(f"{name}: line {problem[0]} {problem[1]}")
    finally:
        os.close(handle)
    return len(plan.names)


def gather_submission(csv_path, file_names, settings):
    """submission.csv from the fragments `settings.fragments` in manifest order
    (`file_names`, `settings.image_ids`): rows copied in the kernel by `settings.threads`
    threads into the temporary file, fsynced, re-read and checked (`check_gathered`), then
    renamed into place. Returns {"rows": row count}."""
    fragments = [RowFragment.load(path) for path in settings.fragments]
    plan = plan_rows(fragments, file_names, list(settings.image_ids), settings)
    threads = settings.threads or THREADS
    with atomic_path(csv_path, lambda: plan.size) as tmp_path:
        sources = [os.open(fragment.path, os.O_RDONLY) for fragment in fragments]
        target = os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.pwrite(target, HEADER, 0)
            with ThreadPoolExecutor(threads) as pool:
                spans = row_spans(len(plan.names))
                list(pool.map(lambda rows: copy_rows(plan, sources, target, rows), spans))
            os.fsync(target)
        finally:
            os.close(target)
            for source in sources:
                os.close(source)
        rows = check_gathered(tmp_path, plan, threads, csv_path)
    log.info("submission: %d rows gathered from %d fragments -> %s (re-read and checked)",
             rows, len(fragments), csv_path)  # fmt: skip
    return {"rows": rows}
