"""The submission stage: every configured format's file in manifest order, each re-read and
checked before it takes its final name (`plugins.SubmissionFormat`), then
submission.valid.json recording what was checked, the predictions' warnings and provenance."""

import logging
from dataclasses import dataclass, field

from .atomic import write_json
from .labels import maps_in_order, read_shard_warnings
from .manifest import Manifest
from .plugins import format_named
from .provenance import collect_provenance

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FormatSettings:
    """What a format's writer and validator need: class count, map size (h, w), the format's
    own `submission.<format>` options, the class names, the threads to use and the images'
    COCO ids in manifest order (formats that name images by id: coco_rle)."""

    num_classes: int
    size: tuple
    options: dict = field(default_factory=dict)
    class_names: tuple = ()
    threads: int | None = None
    image_ids: tuple = ()

    def names(self):
        """The class names, or the indices as text where only the count is known."""
        return self.class_names or tuple(str(index) for index in range(self.num_classes))


def format_settings(name, submission_options, class_names, size, threads=None, image_ids=()):
    """`FormatSettings` of format `name` (`submission_options`: the `submission:` section;
    `class_names`: the names, or a class count where only the count is known)."""
    names = tuple(class_names) if not isinstance(class_names, int) else ()
    count = class_names if isinstance(class_names, int) else len(names)
    options = dict(submission_options.get(name, {}))
    return FormatSettings(count, tuple(size), options, names, threads, tuple(image_ids))


def write_formats(manifest, resized_paths, outputs, submission_options, class_names, size,
                  threads=None):  # fmt: skip
    """Write `outputs` ({format name: path}) from the resized shards, in manifest order;
    {format name: {"path", and the format's check summary}}."""
    image_ids = [entry.id for entry in manifest.images]
    file_names = manifest.file_names()
    checked = {}
    for name, path in outputs.items():
        settings = format_settings(name, submission_options, class_names, size, threads, image_ids)
        summary = format_named(name).write(
            path, file_names, lambda: maps_in_order(image_ids, resized_paths), settings
        )
        checked[name] = {"path": str(path), **summary}
    return checked


def write_report(report_path, rows, files, warnings, provenance=None):
    """submission.valid.json: the checked files, the rows (images) they hold, the warnings of
    the predictions (machine-readable, one line each; also logged) and what made them."""
    for warning in warnings:
        log.warning("%s", warning)
    report = {"rows": rows, "valid": True, "files": files, "warnings": list(warnings)}
    write_json(report_path, {**report, **({"provenance": provenance} if provenance else {})})


def submission_stage(
    manifest_path,
    resized_paths,
    outputs,
    report_path,
    class_names,
    size,
    submission_options=None,
    threads=None,
    provenance_settings=None,
    model_files=None,
):
    """Stage entry: each format of `outputs` ({name: path}) written and checked (with
    `threads` threads) before it takes its final name, then submission.valid.json with the
    shards' prediction warnings and the provenance of `provenance_settings` and
    `model_files`."""
    manifest = Manifest.load(manifest_path)
    files = write_formats(
        manifest, resized_paths, outputs, submission_options or {}, class_names, size, threads
    )
    warnings = [w for path in resized_paths for w in read_shard_warnings(path)]
    provenance = collect_provenance(provenance_settings or {}, model_files or {})
    write_report(report_path, len(manifest.images), files, warnings, provenance)


def validate_file(path, manifest_path, format_name, class_names, size, options=None,
                  threads=None):  # fmt: skip
    """Re-read a finished submission file of `format_name` against a manifest (the CLI's
    `validate-submission`); the format's check summary."""
    manifest = Manifest.load(manifest_path)
    image_ids = [entry.id for entry in manifest.images]
    settings = format_settings(format_name, {format_name: options or {}}, class_names, size,
                               threads, image_ids)  # fmt: skip
    return format_named(format_name).validate(path, manifest.file_names(), settings)
