"""The submission stage: every configured format's file in manifest order, each re-read and
checked before it takes its final name (`plugins.SubmissionFormat`), then
submission.valid.json recording what was checked, the predictions' warnings and provenance."""

import logging

from .atomic import write_json
from .labels import maps_in_order, read_shard_warnings
from .manifest import Manifest
from .plugins import format_named, format_settings
from .provenance import collect_provenance

log = logging.getLogger(__name__)


def write_formats(manifest, resized_paths, outputs, submission_options, class_names, size,
                  threads=None, fragments=None):  # fmt: skip
    """Write `outputs` ({format name: path}) from the resized shards, in manifest order (formats
    with per-shard fragments from `fragments`: {format name: paths in shard order});
    {format name: {"path", and the format's check summary}}."""
    image_ids = [entry.id for entry in manifest.images]
    file_names = manifest.file_names()
    checked = {}
    for name, path in outputs.items():
        settings = format_settings(name, submission_options, class_names, size, threads,
                                   image_ids, (fragments or {}).get(name, ()))  # fmt: skip
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
    fragments=None,
):
    """Stage entry: each format of `outputs` ({name: path}) written (from its per-shard
    `fragments`, {name: paths}, where it has them) and checked (with `threads` threads) before
    it takes its final name, then submission.valid.json with the shards' prediction warnings
    and the provenance of `provenance_settings` and `model_files`."""
    manifest = Manifest.load(manifest_path)
    files = write_formats(manifest, resized_paths, outputs, submission_options or {},
                          class_names, size, threads, fragments)  # fmt: skip
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
