"""Kaggle RLE CSV (`kaggle_rle_format`): encoder, decoder, writer and re-read validator.

The maps are argmax label maps, so each pixel belongs to one class and the masks of an image
are disjoint; the validator requires that too. A per-class probability threshold (multi-label
tasks, where masks overlap) needs per-class scores the workflow does not keep: it writes argmax
maps only.
"""

import csv
import sys

import numpy as np

from ..atomic import atomic_path
from ..errors import SegsubmitError
from .options import selected_classes, write_checked

HEADERS = {
    "image_class_rle": ["image_name", "class", "rle"],
    "imageid_classid": ["ImageId_ClassId", "EncodedPixels"],
}


def column_major_runs(label_map):
    """(values, 1-indexed starts, lengths) of the runs of equal values of `label_map` read
    column-major (top to bottom, then left to right)."""
    flat = np.asarray(label_map).T.ravel()
    if not flat.size:
        empty = np.zeros(0, dtype=np.int64)
        return flat, empty, empty
    starts = np.concatenate(([0], np.flatnonzero(flat[1:] != flat[:-1]) + 1))
    lengths = np.diff(np.append(starts, flat.size))
    return flat[starts], starts + 1, lengths


def rle_strings(label_map, classes):
    """{class: its mask's Kaggle RLE string} for each class of `classes` ('' when absent)."""
    values, starts, lengths = column_major_runs(label_map)
    strings = {}
    for value in classes:
        chosen = values == value
        pairs = np.stack([starts[chosen], lengths[chosen]], axis=1).ravel()
        strings[value] = " ".join(map(str, pairs.tolist()))
    return strings


def encode_mask(mask):
    """The Kaggle RLE string of a boolean mask."""
    return rle_strings(np.asarray(mask, dtype=bool), [True])[True]


def parse_rle(text, pixel_count):
    """(0-indexed starts, lengths) of an RLE string, or the reason it is not a valid one: pairs
    of positive integers, starts increasing, runs inside the image and not overlapping."""
    tokens = text.split(" ") if text else []
    if not all(token.isdigit() and token.isascii() for token in tokens):
        return "is not space-separated integers"
    if len(tokens) % 2:
        return f"has {len(tokens)} numbers, not start/length pairs"
    numbers = np.array(tokens, dtype=np.int64).reshape(-1, 2)
    starts, lengths = numbers[:, 0] - 1, numbers[:, 1]
    if len(numbers) and (starts.min() < 0 or lengths.min() < 1):
        return "has a start below 1 or a length below 1"
    ends = starts + lengths
    if len(numbers) and ends.max() > pixel_count:
        return f"has a run ending at pixel {ends.max()}, past the {pixel_count} pixels"
    if (starts[1:] < ends[:-1]).any():
        return "has runs out of order or overlapping"
    return starts, lengths


def decode_mask(starts, lengths, size):
    """(h, w) bool mask of 0-indexed column-major runs."""
    height, width = size
    count = height * width
    marks = np.bincount(starts, minlength=count + 1) - np.bincount(
        starts + lengths, minlength=count + 1
    )
    return (np.cumsum(marks[:count]) > 0).reshape(width, height).T


def decode_rle(text, size):
    """(h, w) bool mask of a Kaggle RLE string; ValueError naming the problem."""
    parsed = parse_rle(text, size[0] * size[1])
    if isinstance(parsed, str):
        raise ValueError(f"RLE {parsed}")
    return decode_mask(*parsed, size)


def row_keys(file_name, index, names, layout):
    """The fields before the RLE of the row of (image, class)."""
    if layout == "imageid_classid":
        return [f"{file_name}_{index}"]
    return [file_name, names[index]]


def write_rle_csv(path, file_names, label_maps, settings, check=None):
    """Write the CSV atomically; `check(tmp_path)` runs on the finished temporary file before
    its rename and its result is returned."""
    layout = settings.options.get("layout", "image_class_rle")
    names = settings.names()
    classes = selected_classes(settings.options.get("classes"), names)
    with atomic_path(path) as tmp_path:
        with open(tmp_path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(HEADERS[layout])
            for file_name, label_map in zip(file_names, label_maps, strict=True):
                strings = rle_strings(label_map, classes)
                for index in classes:
                    writer.writerow([*row_keys(file_name, index, names, layout), strings[index]])
        return check(tmp_path) if check else None


def validate_rle(path, file_names, settings, label_maps=None, name=None):
    """Re-read the CSV: header, one row per image x listed class in manifest and class order,
    each RLE valid for the map size, an image's masks disjoint; with `label_maps` (an iterable
    in manifest order) each decoded mask must equal the map's pixels of its class. Error on
    the first problem, naming the line; returns {"rows", "images"}."""
    shown = name or path
    layout = settings.options.get("layout", "image_class_rle")
    names = settings.names()
    classes = selected_classes(settings.options.get("classes"), names)
    size = tuple(settings.size)
    maps = iter(label_maps) if label_maps is not None else None
    csv.field_size_limit(sys.maxsize)
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            records = csv.reader(handle)
            if next(records, None) != HEADERS[layout]:
                raise SegsubmitError(f"{shown}: header must be '{','.join(HEADERS[layout])}'")
            line = 1
            for image, file_name in enumerate(file_names):
                owner = np.full(size, -1, dtype=np.int16)
                expected = next(maps) if maps is not None else None
                for index in classes:
                    line += 1
                    row = next(records, None)
                    if row is None:
                        raise SegsubmitError(
                            f"{shown}: ends at line {line - 1}; expected a row for "
                            f"{file_name!r} class {names[index]!r} (image {image + 1} of "
                            f"{len(file_names)})"
                        )
                    keys = row_keys(file_name, index, names, layout)
                    if row[:-1] != keys or len(row) != len(keys) + 1:
                        raise SegsubmitError(
                            f"{shown}: line {line} is {','.join(row)[:80]!r}, expected "
                            f"{','.join(keys)!r},<rle> (manifest and class order)"
                        )
                    parsed = parse_rle(row[-1], size[0] * size[1])
                    if isinstance(parsed, str):
                        raise SegsubmitError(f"{shown}: line {line} RLE {parsed}")
                    mask = decode_mask(*parsed, size)
                    if (owner[mask] >= 0).any():
                        other = names[int(owner[mask].max())]
                        raise SegsubmitError(
                            f"{shown}: line {line} mask of {names[index]!r} overlaps "
                            f"{other!r} in {file_name!r}; an argmax map gives a pixel one class"
                        )
                    owner[mask] = index
                    if expected is not None and not np.array_equal(mask, expected == index):
                        wrong = int((mask != (expected == index)).sum())
                        raise SegsubmitError(
                            f"{shown}: line {line} decodes to a mask of {names[index]!r} that "
                            f"differs from the prediction at {wrong} pixels"
                        )
            extra = next(records, None)
            if extra is not None:
                raise SegsubmitError(
                    f"{shown}: line {line + 1} is past the {len(file_names)} images x "
                    f"{len(classes)} classes the manifest gives"
                )
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise SegsubmitError(f"{shown}: cannot read as CSV ({err})") from err
    return {"rows": line - 1, "images": len(file_names)}


def write_checked_rle(path, file_names, label_maps, settings):
    """`options.write_checked` with this format's writer and validator."""
    return write_checked(
        path, file_names, label_maps, settings, write_rle_csv, validate_rle, ("kaggle_rle", "rows")
    )
