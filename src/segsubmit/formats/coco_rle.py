"""COCO RLE results json (`coco_rle_format`): writer (pycocotools `mask.encode`) and re-read
validator (pycocotools `mask.decode`)."""

import json

import numpy as np

from ..atomic import atomic_path
from ..coco import is_int, rle_problem
from ..errors import SegsubmitError
from .options import class_ids, selected_classes, write_checked

RECORD_KEYS = {"image_id", "category_id", "segmentation"}


def encode_records(image_id, label_map, classes, category_of):
    """The records of one map: one per class of `classes` present in it, in that order."""
    from pycocotools import mask as mask_utils

    present = [index for index in classes if (label_map == index).any()]
    if not present:
        return []
    masks = np.asfortranarray(
        np.stack([label_map == index for index in present], axis=-1), dtype=np.uint8
    )
    return [
        {
            "image_id": image_id,
            "category_id": category_of[index],
            "segmentation": {"size": rle["size"], "counts": rle["counts"].decode("ascii")},
        }
        for index, rle in zip(present, mask_utils.encode(masks), strict=True)
    ]


def options_of(settings):
    names = settings.names()
    classes = selected_classes(settings.options.get("classes"), names)
    category_of = class_ids(settings.options.get("category_ids") or {}, names)
    return names, classes, category_of


def write_coco_rle(path, file_names, label_maps, settings, check=None):
    """Write the json atomically, one record per line; `check(tmp_path)` runs on the finished
    temporary file before its rename and its result is returned."""
    _, classes, category_of = options_of(settings)
    image_ids = settings.image_ids
    if len(image_ids) != len(file_names):
        raise ValueError(f"{path}: {len(image_ids)} image ids for {len(file_names)} file names")
    with atomic_path(path) as tmp_path:
        with open(tmp_path, "w", encoding="utf-8") as handle:
            handle.write("[")
            first = True
            for image_id, label_map in zip(image_ids, label_maps, strict=True):
                for record in encode_records(image_id, label_map, classes, category_of):
                    handle.write(("\n" if first else ",\n") + json.dumps(record))
                    first = False
            handle.write("\n]\n")
        return check(tmp_path) if check else None


def record_problem(record, size, known_ids, class_of_category):
    """Why a record is not a results record of this split, or None."""
    if not isinstance(record, dict) or set(record) != RECORD_KEYS:
        return f"must be an object with keys {sorted(RECORD_KEYS)}"
    if not is_int(record["image_id"]) or record["image_id"] not in known_ids:
        return f"image_id {record['image_id']!r:.40} is not an image of the manifest"
    if not is_int(record["category_id"]) or record["category_id"] not in class_of_category:
        return f"category_id {record['category_id']!r:.40} is not a configured class's id"
    segmentation = record["segmentation"]
    if not isinstance(segmentation, dict) or set(segmentation) != {"size", "counts"}:
        return "segmentation must be {size, counts}"
    if not isinstance(segmentation["counts"], str):
        return "segmentation counts must be a compressed RLE string"
    problem = rle_problem(segmentation, *size)
    return f"segmentation {problem}" if problem else None


def validate_coco_rle(path, file_names, settings, label_maps=None, name=None):
    """Re-read the json: a list of records, each with a manifest image id, a configured
    category id and an RLE of the map size; images in manifest order, an image's classes in
    `classes` order, once each, masks disjoint. With `label_maps` (in manifest order) each
    image's records must be exactly the classes present in its map, decoding to their pixels.
    Error on the first problem, naming the record; returns {"rows", "images"}."""
    from pycocotools import mask as mask_utils

    shown = name or path
    names, classes, category_of = options_of(settings)
    class_of_category = {category_of[index]: index for index in classes}
    rank = {index: position for position, index in enumerate(classes)}
    positions = {image_id: position for position, image_id in enumerate(settings.image_ids)}
    if len(positions) != len(file_names):
        raise SegsubmitError(f"{shown}: the manifest's image ids are needed to check it")
    size = tuple(settings.size)
    try:
        with open(path, encoding="utf-8") as handle:
            records = json.load(handle)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise SegsubmitError(f"{shown}: cannot read as json ({err})") from err
    if not isinstance(records, list):
        raise SegsubmitError(
            f"{shown}: must be a json list of records, not {type(records).__name__}"
        )
    groups = {}
    last = (-1, -1)
    for number, record in enumerate(records):
        problem = record_problem(record, size, positions, class_of_category)
        if problem:
            raise SegsubmitError(f"{shown}: record {number} {problem}")
        index = class_of_category[record["category_id"]]
        order = (positions[record["image_id"]], rank[index])
        if order <= last:
            raise SegsubmitError(
                f"{shown}: record {number} (image_id {record['image_id']}, class "
                f"{names[index]!r}) is out of order or repeated (images in manifest order, "
                "each image's classes once, in `classes` order)"
            )
        last = order
        groups.setdefault(order[0], []).append((number, index, record["segmentation"]))
    maps = iter(label_maps) if label_maps is not None else None
    for position, file_name in enumerate(file_names):
        expected = next(maps) if maps is not None else None
        owner = np.full(size, -1, dtype=np.int16)
        for number, index, segmentation in groups.get(position, []):
            rle = {"size": segmentation["size"], "counts": segmentation["counts"].encode()}
            mask = mask_utils.decode(rle).astype(bool)
            if (owner[mask] >= 0).any():
                other = names[int(owner[mask].max())]
                raise SegsubmitError(
                    f"{shown}: record {number} mask of {names[index]!r} overlaps {other!r} in "
                    f"{file_name!r}; an argmax map gives a pixel one class"
                )
            owner[mask] = index
            if expected is not None and not np.array_equal(mask, expected == index):
                raise SegsubmitError(
                    f"{shown}: record {number} ({file_name!r}, {names[index]!r}) differs from "
                    f"the prediction at {int((mask != (expected == index)).sum())} pixels"
                )
        if expected is not None:
            missing = [i for i in classes if (expected == i).any() and not (owner == i).any()]
            if missing:
                raise SegsubmitError(
                    f"{shown}: no record for {file_name!r} class {names[missing[0]]!r}, which "
                    "the prediction holds"
                )
    return {"rows": len(records), "images": len(file_names)}


def write_checked_coco_rle(path, file_names, label_maps, settings):
    """`options.write_checked` with this format's writer and validator."""
    return write_checked(
        path,
        file_names,
        label_maps,
        settings,
        write_coco_rle,
        validate_coco_rle,
        ("coco_rle", "records"),
    )
