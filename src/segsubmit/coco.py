"""Read and validate a COCO-style json: images, categories and (optional) annotations.

`validate_coco` is the workflow's one gate: every field a later stage reads is checked here
(exact types, finite numbers, positive sizes, well-formed segmentations, unique ids and names,
one canonical spelling per file), so that nothing after the manifest fails on the json.
"""

import functools
import json
import math
import os
import unicodedata
from collections import Counter
from pathlib import Path

from .errors import SegsubmitError

# Characters Snakemake reads as wildcards or a shell/glob as patterns: a file_name holding one
# is not the same path everywhere it is used.
INTERPRETED_CHARACTERS = "{}*?[]"
# Ids are stored as int64 with the label maps (`labels`): a json number beyond it cannot be.
INT64_RANGE = (-(2**63), 2**63 - 1)


def load_coco(json_path):
    """Parse the json file; a one-line error if it is missing or not json."""
    json_path = Path(json_path)
    if not json_path.is_file():
        raise SegsubmitError(f"{json_path}: COCO json not found; check data.root and data.splits")
    try:
        return json.loads(json_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as err:
        raise SegsubmitError(f"{json_path}: not valid JSON ({err})") from err


def read_json_or_none(path):
    """A json file's content, or None when it is absent, unreadable or not json (a later stage
    says what is wrong). Parsed once per version of the file in a process: the Snakefile asks
    for a split's json several times while it starts (config checks, the images' fingerprint,
    the dry-run note). Callers must not modify what it returns."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return _parsed_json(str(path), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=16)
def _parsed_json(path, mtime_ns, size):
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None


def _duplicates(values):
    return sorted(value for value, count in Counter(values).items() if count > 1)


def _short(values, limit=10):
    shown = ", ".join(repr(v) for v in list(values)[:limit])
    return shown + (f" … ({len(values)} in all)" if len(values) > limit else "")


def is_int(value):
    """An int and not a bool (json `true` is not an id)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_finite_number(value):
    """An int or float (not a bool), finite."""
    return (is_int(value) or isinstance(value, float)) and math.isfinite(value)


def _require(json_path, ok, where, expected, value):
    if not ok:
        raise SegsubmitError(f"{json_path}: {where} must be {expected}, got {value!r:.60}")


def _records(json_path, coco, section, keys, required=True):
    """`coco[section]` as a list of objects holding `keys`; [] when absent and not required."""
    records = coco.get(section)
    if records is None and not required:
        return []
    _require(json_path, isinstance(records, list), f"'{section}'", "a list", records)
    for index, record in enumerate(records):
        _require(json_path, isinstance(record, dict), f"{section}[{index}]", "an object", record)
        missing = [key for key in keys if key not in record]
        if missing:
            raise SegsubmitError(f"{json_path}: {section}[{index}] lacks {', '.join(missing)}")
    return records


def _check_ids(json_path, records, section, key="id"):
    low, high = INT64_RANGE
    for index, record in enumerate(records):
        value, where = record[key], f"{section}[{index}].{key}"
        _require(json_path, is_int(value), where, "an integer", value)
        _require(
            json_path, low <= value <= high, where, "within int64 (label files store it)", value
        )


def file_name_problem(file_name):
    """Why `file_name` is not one canonical relative path under the data root, or None."""
    try:
        file_name.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: json.dumps of a name os.listdir could not decode
        return (
            "is not valid UTF-8 (a name the file system stores in another encoding, e.g. "
            "Latin-1, read with surrogate escapes); rename the file to a UTF-8 name"
        )
    if file_name != file_name.strip():
        return "has leading or trailing spaces"
    if "\\" in file_name:
        return "contains a backslash; use '/' between folders"
    if any(ord(character) < 32 or ord(character) == 127 for character in file_name):
        return "contains control characters"
    interpreted = sorted({c for c in file_name if c in INTERPRETED_CHARACTERS})
    if interpreted:
        return (
            f"contains {''.join(interpreted)!r}, which Snakemake or a shell interprets in a "
            "path; rename the file"
        )
    parts = file_name.split("/")
    if file_name.startswith("/") or ".." in parts:
        return "escapes the data root; use a path relative to data.root without '..'"
    if "" in parts:
        return "contains '//' or ends with '/'; spell it as folder/name"
    if "." in parts:
        return "contains a './' component; spell it as folder/name"
    return None


def safe_relative_path(json_path, file_name):
    """`file_name` itself when it is the one canonical spelling of a relative path inside the
    data root, else a one-line error."""
    if not isinstance(file_name, str) or not file_name:
        raise SegsubmitError(f"{json_path}: file_name {file_name!r} must be a non-empty string")
    problem = file_name_problem(file_name)
    if problem:
        raise SegsubmitError(f"{json_path}: file_name {file_name!r} {problem}")
    return file_name


def look_alike_key(file_name):
    """What a case-insensitive or normalising file system (macOS, Windows) sees as the name."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", file_name).casefold())


def check_look_alikes(json_path, file_names):
    """Refuse distinct names that are one file after Unicode normalisation or case folding."""
    seen = {}
    for file_name in file_names:
        other = seen.setdefault(look_alike_key(file_name), file_name)
        if other != file_name:
            raise SegsubmitError(
                f"{json_path}: file_names {other!r} and {file_name!r} differ only in case or "
                "Unicode normalisation (one file on macOS and Windows); rename one"
            )


def validate_images(json_path, coco, max_pixels=None):
    """Check `images`: present, non-empty, typed fields, positive sizes (at most `max_pixels`),
    unique ids and file names, one canonical spelling each."""
    images = coco.get("images")
    if not isinstance(images, list) or not images:
        raise SegsubmitError(f"{json_path}: 'images' is missing or empty; nothing to predict")
    _records(json_path, coco, "images", ("id", "file_name", "width", "height"))
    _check_ids(json_path, images, "images")
    for index, image in enumerate(images):
        for key in ("width", "height"):
            value = image[key]
            _require(
                json_path,
                is_int(value) and value > 0,
                f"images[{index}].{key}",
                "a positive integer",
                value,
            )
        pixels = image["width"] * image["height"]
        if max_pixels is not None and pixels > max_pixels:
            raise SegsubmitError(
                f"{json_path}: images[{index}] ({image['file_name']!r:.80}) is "
                f"{image['width']}x{image['height']} = {pixels} pixels, above "
                f"infer.max_image_pixels {max_pixels}; shrink it or raise the limit"
            )
        safe_relative_path(json_path, image["file_name"])
    duplicate_ids = _duplicates(image["id"] for image in images)
    if duplicate_ids:
        raise SegsubmitError(f"{json_path}: duplicate image ids {_short(duplicate_ids)}")
    duplicate_names = _duplicates(image["file_name"] for image in images)
    if duplicate_names:
        raise SegsubmitError(f"{json_path}: duplicate file_name {_short(duplicate_names)}")
    check_look_alikes(json_path, [image["file_name"] for image in images])


def validate_categories(json_path, coco, class_names, category_map=None):
    """Check `categories`: typed, unique ids and names, every name one of `class_names` once
    renamed with `category_map` ({json name: class name}, data.category_map); returns
    {category id: class name}."""
    category_map = category_map or {}
    categories = _records(json_path, coco, "categories", ("id", "name"), required=False)
    _check_ids(json_path, categories, "categories")
    for index, category in enumerate(categories):
        _require(
            json_path,
            isinstance(category["name"], str),
            f"categories[{index}].name",
            "a string",
            category["name"],
        )
    for key in ("id", "name"):
        duplicates = _duplicates(category[key] for category in categories)
        if duplicates:
            raise SegsubmitError(
                f"{json_path}: duplicate category {key}s {_short(duplicates)}; each category "
                "needs its own id and name"
            )
    class_of = {c["id"]: category_map.get(c["name"], c["name"]) for c in categories}
    unknown = [c["name"] for c in categories if class_of[c["id"]] not in class_names]
    if unknown:
        raise SegsubmitError(
            f"{json_path}: categories {_short(unknown)} are not in the configured classes; "
            "add them to `classes`, or map them to a class with data.category_map"
        )
    return class_of


def category_class_index(json_path, coco, class_names, category_map=None):
    """Map each COCO category id to its class index: the position in `class_names` of its name,
    after renaming it with `category_map`."""
    class_of = validate_categories(json_path, coco, class_names, category_map)
    return {category: class_names.index(name) for category, name in class_of.items()}


def polygon_problem(polygon, height, width):
    """Why a polygon [x0, y0, x1, y1, ...] is unusable on a width x height image, or None."""
    if not isinstance(polygon, list) or not all(map(is_finite_number, polygon)):
        return "must be a list of finite numbers"
    if len(polygon) % 2 or len(polygon) < 6:
        return f"has {len(polygon)} numbers; needs an even count of at least 6 (3 x, y points)"
    xs, ys = polygon[0::2], polygon[1::2]
    if min(xs) < -1 or max(xs) > width + 1 or min(ys) < -1 or max(ys) > height + 1:
        return f"has points outside the {width}x{height} image"
    return None


def rle_string_counts(text):
    """Run lengths of a compressed COCO RLE string (pycocotools' rleFrString), or None if it is
    not one."""
    counts, position = [], 0
    while position < len(text):
        value, shift, more = 0, 0, True
        while more:
            if position == len(text):
                return None
            code = ord(text[position]) - 48
            if not 0 <= code < 64:
                return None
            value |= (code & 0x1F) << shift
            more = bool(code & 0x20)
            position, shift = position + 1, shift + 5
            if not more and code & 0x10:
                value |= -1 << shift
        counts.append(value + (counts[-2] if len(counts) > 2 else 0))
    return counts


def rle_problem(rle, height, width):
    """Why an RLE segmentation {size: [h, w], counts} is unusable for the image, or None."""
    if rle.get("size") != [height, width]:
        return f"RLE size {rle.get('size')!r:.40} must be the image's [height, width]"
    counts = rle.get("counts")
    if isinstance(counts, str):
        counts = rle_string_counts(counts)
    if not isinstance(counts, list) or not all(is_int(c) and c >= 0 for c in counts):
        return "RLE counts must be non-negative integers or a compressed RLE string"
    if sum(counts) != height * width:
        return f"RLE counts cover {sum(counts)} pixels, not {height}x{width}"
    return None


def segmentation_problem(segmentation, height, width):
    """Why an annotation's segmentation (polygons or RLE) is unusable, or None."""
    if isinstance(segmentation, dict):
        return rle_problem(segmentation, height, width)
    if not isinstance(segmentation, list) or not segmentation:
        return "must be a non-empty list of polygons or an RLE object"
    for index, polygon in enumerate(segmentation):
        problem = polygon_problem(polygon, height, width)
        if problem:
            return f"polygon {index} {problem}"
    return None


def validate_annotation(json_path, index, annotation, images_by_id):
    """Typed fields of one annotation whose image exists; segmentation fits that image."""
    where = f"annotations[{index}]"
    area = annotation.get("area", 0)
    _require(
        json_path,
        is_finite_number(area) and area >= 0,
        f"{where}.area",
        "a finite number >= 0 (or absent: computed)",
        area,
    )
    crowd = annotation.get("iscrowd", 0)
    _require(json_path, crowd in (0, 1) and is_int(crowd), f"{where}.iscrowd", "0 or 1", crowd)
    image = images_by_id[annotation["image_id"]]
    problem = segmentation_problem(annotation["segmentation"], image["height"], image["width"])
    if problem:
        raise SegsubmitError(f"{json_path}: {where}.segmentation {problem}")


def validate_annotations(json_path, coco, class_names, category_map=None):
    """Check annotations: typed ids referring to known images and categories, finite area,
    well-formed segmentations."""
    annotations = _records(
        json_path, coco, "annotations", ("image_id", "category_id", "segmentation"), required=False
    )
    _check_ids(json_path, annotations, "annotations", "image_id")
    _check_ids(json_path, annotations, "annotations", "category_id")
    images_by_id = {image["id"]: image for image in coco["images"]}
    orphan_ids = sorted({a["image_id"] for a in annotations} - images_by_id.keys())
    if orphan_ids:
        raise SegsubmitError(
            f"{json_path}: annotations refer to image ids {_short(orphan_ids)} "
            "missing from 'images'"
        )
    known_categories = category_class_index(json_path, coco, class_names, category_map)
    unknown_ids = sorted({a["category_id"] for a in annotations} - known_categories.keys())
    if unknown_ids:
        raise SegsubmitError(
            f"{json_path}: annotations use category ids {_short(unknown_ids)} "
            "missing from 'categories'"
        )
    for index, annotation in enumerate(annotations):
        validate_annotation(json_path, index, annotation, images_by_id)


def validate_coco(json_path, coco, class_names, category_map=None, max_pixels=None):
    """All checks the workflow relies on, each failing with a one-line message."""
    _require(json_path, isinstance(coco, dict), "the top level", "an object with 'images'", coco)
    validate_images(json_path, coco, max_pixels)
    validate_annotations(json_path, coco, class_names, category_map)
