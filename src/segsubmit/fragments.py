"""The resize job's stage entry: a shard's maps resized (`resize.resize_stage`), then the shard's
part of each submission format that has one (`plugins.SubmissionFormat.fragments`: the CSV's
rows, encoded and checked), so that this work runs as each shard is resized and the submission
job only gathers. Its own module, so that the modules importing `resize` (the demo model, the
ground truth, the report) do not import the plug-ins."""

import logging

from .ahead import adopt_staged
from .labels import LabelShard
from .plugins import format_named, format_settings
from .resize import MAPS_AT_ONCE, resize_stage

log = logging.getLogger(__name__)


def write_fragments(resized_path, fragments, class_names, size, threads=None):
    """The per-shard fragments ({format name: path}) from the resized maps as stored in
    `resized_path`, `threads` rows at once."""
    shard = LabelShard(resized_path)
    for name, path in fragments.items():
        settings = format_settings(name, {}, class_names, size, threads)
        maps = (label_map for _, span in shard.spans(MAPS_AT_ONCE) for label_map in span)
        rows = format_named(name).write_fragment(path, shard.image_ids, maps, settings)
        log.info("resize: %s fragment, %d rows encoded and checked -> %s", name, rows, path)


def resize_shard_stage(
    labels_path,
    resized_path,
    backend,
    size,
    interpolation,
    allow_bilinear_labels,
    area_labels_path=None,
    fragments=None,
    class_names=(),
    threads=None,
    ahead=None,
):
    """Stage entry: the files the infer job staged for this job (`ahead`, an
    `ahead.AheadPlan` of this job's outputs and params) when their key is this job's, else
    `resize.resize_stage` (`area_labels_path`: its probability-space maps), then the formats'
    `fragments` ({format name: path}; `class_names` bounds their values)."""
    if ahead is not None and adopt_staged(ahead, labels_path):
        log.info("resize: adopted the maps and fragments its infer job resized ahead (%s)",
                 ahead.key_path)  # fmt: skip
        return
    resize_stage(labels_path, resized_path, backend, size, interpolation, allow_bilinear_labels,
                 area_labels_path, threads)  # fmt: skip
    write_fragments(resized_path, fragments or {}, class_names, size, threads)
