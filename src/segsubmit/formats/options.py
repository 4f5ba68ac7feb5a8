"""Options several formats share (which classes a file lists, the id written for each class)
and their checks. Light: the declarations' `check_options` run in the main snakemake process
while it parses the workflow (no numpy here)."""

import logging

from ..errors import SegsubmitError

log = logging.getLogger(__name__)

CLASSES_OPTION = {
    "type": ["array", "null"],
    "items": {"type": "string"},
    "uniqueItems": True,
    "default": None,
    "description": (
        "the classes written for each image, in this order (names from `classes`); null = every "
        "class except the background (index 0)"
    ),
}


def id_map_option(what, example):
    """The schema of a `class name -> id` option (`label_ids`, `category_ids`)."""
    return {
        "type": "object",
        "additionalProperties": {"type": "integer", "minimum": 0, "maximum": 2**31 - 1},
        "default": {},
        "description": (
            f"class name -> the {what} written for it, e.g. {example}; every class the file "
            "holds needs one, and no two classes may share one; {} = the class index"
        ),
    }


def selected_classes(option, class_names):
    """Indices of the classes a file lists: `option` (names, or None = all but index 0)."""
    if option is None:
        return list(range(1, len(class_names)))
    return [class_names.index(name) for name in option]


def check_classes(key, option, class_names):
    """The `classes` option names known classes and at least one."""
    if option is None:
        return
    unknown = [name for name in option if name not in class_names]
    if unknown:
        raise SegsubmitError(
            f"{key}: {', '.join(map(repr, unknown))} not in `classes` {list(class_names)}; "
            "list class names from it"
        )
    if not option:
        raise SegsubmitError(f"{key}: empty; list at least one class (or null for all)")


def check_id_map(key, id_map, class_names, needed, largest=None):
    """An id map (`{}` = the index) names known classes, covers the classes in `needed`
    (indices), gives distinct ids and none above `largest`."""
    if not id_map:
        return
    unknown = [name for name in id_map if name not in class_names]
    if unknown:
        raise SegsubmitError(
            f"{key}: {', '.join(map(repr, unknown))} not in `classes`; map class names from it"
        )
    missing = [class_names[index] for index in needed if class_names[index] not in id_map]
    if missing:
        raise SegsubmitError(
            f"{key}: no id for {', '.join(map(repr, missing))}; give every class an id (its "
            "pixels could not be written otherwise)"
        )
    owners = {}
    for name, value in id_map.items():
        if value in owners:
            raise SegsubmitError(
                f"{key}: {owners[value]!r} and {name!r} both map to {value}; ids must be "
                "distinct (the file could not be read back into classes)"
            )
        owners[value] = name
    if largest is not None and max(id_map.values()) > largest:
        name = max(id_map, key=id_map.get)
        raise SegsubmitError(f"{key}: {name!r} maps to {id_map[name]}, above {largest}")


def class_ids(id_map, class_names):
    """{class index: id written} of an id map (`{}` = the index)."""
    if not id_map:
        return {index: index for index in range(len(class_names))}
    return {class_names.index(name): value for name, value in id_map.items()}


def write_checked(path, file_names, label_maps, settings, write, validate, what):
    """A format's file of `label_maps()`, each map checked (size, classes) as it is encoded by
    `write(path, file_names, maps, settings, check)`, under a temporary name; `check` re-reads,
    decodes and compares it with the maps (`validate`) before it is renamed into place."""
    from .competition_csv import checked_label_maps

    size, num_classes = tuple(settings.size), settings.num_classes

    def check(tmp_path):
        return validate(tmp_path, file_names, settings, label_maps(), name=path)

    summary = write(
        path, file_names, checked_label_maps(label_maps(), size, num_classes), settings, check
    )
    log.info("%s: %d %s -> %s (re-read, decoded and compared)", what[0], summary["rows"],
             what[1], path)  # fmt: skip
    return summary
