"""Read and validate a COCO-style json: images, categories and (optional) annotations."""

import json
from collections import Counter
from pathlib import Path, PurePosixPath

from .errors import SegsubmitError


def load_coco(json_path):
    """Parse the json file; a one-line error if it is missing or not json."""
    json_path = Path(json_path)
    if not json_path.is_file():
        raise SegsubmitError(f"{json_path}: COCO json not found; check data.root and data.splits")
    try:
        return json.loads(json_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise SegsubmitError(f"{json_path}: not valid JSON ({err})") from err


def _duplicates(values):
    return sorted(value for value, count in Counter(values).items() if count > 1)


def _short(values, limit=10):
    shown = ", ".join(repr(v) for v in list(values)[:limit])
    return shown + (f" … ({len(values)} in all)" if len(values) > limit else "")


def _check_keys(json_path, records, section, keys):
    for index, record in enumerate(records):
        missing = [key for key in keys if key not in record]
        if missing:
            raise SegsubmitError(f"{json_path}: {section}[{index}] lacks {', '.join(missing)}")


def safe_relative_path(json_path, file_name):
    """`file_name` as a relative path that stays inside the data root, else an error."""
    path = PurePosixPath(str(file_name).replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise SegsubmitError(
            f"{json_path}: file_name {file_name!r} escapes the data root; "
            "use a path relative to data.root without '..'"
        )
    return str(path)


def validate_images(json_path, coco):
    """Check `images`: present, non-empty, unique ids and file names, safe paths."""
    images = coco.get("images")
    if not isinstance(images, list) or not images:
        raise SegsubmitError(f"{json_path}: 'images' is missing or empty; nothing to predict")
    _check_keys(json_path, images, "images", ("id", "file_name", "width", "height"))
    duplicate_ids = _duplicates(image["id"] for image in images)
    if duplicate_ids:
        raise SegsubmitError(f"{json_path}: duplicate image ids {_short(duplicate_ids)}")
    duplicate_names = _duplicates(image["file_name"] for image in images)
    if duplicate_names:
        raise SegsubmitError(f"{json_path}: duplicate file_name {_short(duplicate_names)}")
    for image in images:
        safe_relative_path(json_path, image["file_name"])


def category_class_index(json_path, coco, class_names, category_map=None):
    """Map each COCO category id to its class index: the position in `class_names` of its name,
    after renaming it with `category_map` ({json name: class name}, data.category_map)."""
    categories = coco.get("categories", [])
    _check_keys(json_path, categories, "categories", ("id", "name"))
    category_map = category_map or {}
    class_of = {c["id"]: category_map.get(c["name"], c["name"]) for c in categories}
    unknown = [c["name"] for c in categories if class_of[c["id"]] not in class_names]
    if unknown:
        raise SegsubmitError(
            f"{json_path}: categories {_short(unknown)} are not in the configured classes; "
            "add them to `classes`, or map them to a class with data.category_map"
        )
    return {category: class_names.index(name) for category, name in class_of.items()}


def validate_annotations(json_path, coco, class_names, category_map=None):
    """Check annotations refer to known images and categories."""
    annotations = coco.get("annotations", [])
    _check_keys(json_path, annotations, "annotations", ("image_id", "category_id", "segmentation"))
    image_ids = {image["id"] for image in coco["images"]}
    orphan_ids = sorted({a["image_id"] for a in annotations} - image_ids)
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


def validate_coco(json_path, coco, class_names, category_map=None):
    """All checks the workflow relies on, each failing with a one-line message."""
    validate_images(json_path, coco)
    validate_annotations(json_path, coco, class_names, category_map)
