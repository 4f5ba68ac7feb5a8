"""One function per workflow stage: plain arguments in, files out. Rule scripts call these;
torch is imported only by the stages that run a model."""

import logging
import time

import numpy as np

from .atomic import atomic_path, write_json
from .coco import load_coco
from .labels import read_label_shard, write_label_shard
from .manifest import build_manifest, read_manifest, write_manifest

log = logging.getLogger(__name__)


def demo_dataset_stage(data_root, json_paths, counts, seed, image_size, class_names):
    """Generate the synthetic demo dataset (train/val/test)."""
    from .synthetic import make_demo_dataset

    make_demo_dataset(data_root, json_paths, counts, seed, image_size, class_names)
    log.info("demo dataset: %s images under %s", counts, data_root)


def demo_model_stage(
    json_path, data_root, class_names, weights_path, architecture, steps, crop, seed
):
    """Train the demo model on the synthetic train split."""
    from .demo_model import train_demo_model

    train_demo_model(
        json_path, data_root, class_names, weights_path, architecture, steps, crop=crop, seed=seed
    )


def manifest_stage(json_path, data_root, class_names, manifest_path, shard_paths):
    """Validate the COCO json and its image files; write manifest + shard files."""
    entries = build_manifest(json_path, data_root, class_names, len(shard_paths))
    write_manifest(entries, manifest_path, shard_paths, data_root)
    sizes = np.bincount([entry["shard"] for entry in entries], minlength=len(shard_paths))
    log.info(
        "manifest: %d images from %s in %d shards (sizes %s)",
        len(entries),
        json_path,
        len(shard_paths),
        sizes.tolist(),
    )


def infer_stage(
    shard_path, labels_path, backend, predictor_settings, batch_size, workers, on_bad_image
):
    """Predict every image of a shard; write its argmax label maps.

    With a fixed batch size the DataLoader workers are started first: they fork from a small
    process and decode the first batches while the model is built and the GPU initialised."""
    started = time.perf_counter()
    import torch

    from .backends import PredictorSettings, load_predictor, resolve_device, worker_prepare
    from .infer import predict_shard_to_file, shard_loader

    log.info("infer: torch and the package imported in %.2f s", time.perf_counter() - started)
    shard = load_coco(shard_path)
    entries, data_root = shard["images"], shard["data_root"]
    settings = PredictorSettings(**predictor_settings)
    device = resolve_device(settings.device)
    if device.type == "cuda":
        # The main process only stacks and launches; a full intra-op thread pool there competes
        # with the decoding workers (H100, 819 images: 1.9x -> 1.3x the model floor).
        torch.set_num_threads(2)
    loader = None
    if batch_size != "auto":
        prepare = worker_prepare(backend, settings, device)
        loader = iter(shard_loader(entries, data_root, prepare, device, batch_size, workers))
    predictor = load_predictor(backend, settings)
    log.info(
        "infer: %d images on %s with %s; model ready %.2f s after the stage started",
        len(entries),
        predictor.device,
        backend,
        time.perf_counter() - started,
    )
    predict_shard_to_file(
        entries, data_root, predictor, batch_size, workers, on_bad_image, labels_path, loader
    )


def resize_stage(labels_path, resized_path, backend, size, interpolation, allow_bilinear_labels):
    """Resize a shard's label maps to the submission size."""
    from .resize import check_interpolation, resize_label_maps

    check_interpolation(interpolation, allow_bilinear_labels)
    image_ids, label_maps = read_label_shard(labels_path)
    resized = resize_label_maps(label_maps, tuple(size), backend, interpolation)
    write_label_shard(resized_path, image_ids, list(resized))
    log.info(
        "resize: %d maps -> %dx%d with %s (%s)",
        len(image_ids),
        size[0],
        size[1],
        backend,
        interpolation,
    )


def maps_in_order(image_ids, shard_paths):
    """The label maps of `image_ids`, in that order, from per-shard label files."""
    maps_by_id = {}
    for shard_path in shard_paths:
        maps_by_id.update(zip(*read_label_shard(shard_path), strict=True))
    return [maps_by_id[image_id] for image_id in image_ids]


def maps_in_manifest_order(manifest_path, shard_paths):
    """(manifest entries, label maps in manifest order) from per-shard label files."""
    entries = read_manifest(manifest_path)
    return entries, maps_in_order([entry["id"] for entry in entries], shard_paths)


def submission_stage(manifest_path, resized_paths, csv_path, num_classes, size):
    """Check the maps (one per manifest image, `size`, classes in range), then write
    submission.csv in manifest order; rule validate_submission re-reads the written file."""
    from .submission import check_label_maps, write_submission

    entries, label_maps = maps_in_manifest_order(manifest_path, resized_paths)
    check_label_maps(label_maps, tuple(size), num_classes)
    write_submission(csv_path, [entry["file_name"] for entry in entries], label_maps)
    log.info("submission: %d rows -> %s", len(entries), csv_path)


def validate_stage(csv_path, manifest_path, report_path, num_classes, size):
    """Re-read the finished submission.csv and record that it passed (a separate pass over the
    file as written, not over the maps it was written from)."""
    from .submission import validate_submission

    file_names = [entry["file_name"] for entry in read_manifest(manifest_path)]
    rows = validate_submission(csv_path, file_names, num_classes, size[0] * size[1])
    write_json(report_path, {"csv": str(csv_path), "rows": rows, "valid": True})
    log.info("validate: %s is a valid submission (%d rows)", csv_path, rows)


def submit_and_validate_stage(
    manifest_path, resized_paths, csv_path, report_path, num_classes, size
):
    """`submission_stage`, then `validate_stage` on the finished file: one job, one process."""
    submission_stage(manifest_path, resized_paths, csv_path, num_classes, size)
    validate_stage(csv_path, manifest_path, report_path, num_classes, size)


def ground_truth_stage(json_path, manifest_path, ground_truth_path, class_names, size):
    """The split's annotations rasterized in manifest order, resized to `size` (h, w) with the
    submission's NEAREST rule, or kept at the images' size when `size` is None."""
    from .metrics import load_ground_truth, rasterize_ground_truth
    from .resize import resize_label_maps

    entries = read_manifest(manifest_path)
    coco_api, class_of_category = load_ground_truth(json_path, class_names)
    truths = [rasterize_ground_truth(coco_api, entry["id"], class_of_category) for entry in entries]
    if size is not None:
        truths = list(resize_label_maps(truths, tuple(size), "albumentations"))
    write_label_shard(ground_truth_path, [entry["id"] for entry in entries], truths)
    log.info("ground truth: %d maps from %s", len(entries), json_path)


def score_stage(ground_truth_path, label_paths, score_path, table_path, class_names, size_name):
    """mIoU and friends of the label maps against the cached ground truth."""
    from .metrics import format_score_table, score_images

    image_ids, truths = read_label_shard(ground_truth_path)
    predictions = maps_in_order(image_ids, label_paths)
    scores = score_images(truths, predictions, len(class_names))
    scores["classes"] = list(class_names)
    scores["size"] = size_name
    table = format_score_table(scores, class_names)
    write_json(score_path, scores)
    with atomic_path(table_path) as tmp_path:
        tmp_path.write_text(table + "\n")
    log.info("score (%s):\n%s", size_name, table)
