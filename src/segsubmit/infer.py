"""Batched inference over one shard: decode in DataLoader workers, predict on the device,
keep only uint8 argmax maps on the host."""

import logging
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from .errors import SegsubmitError
from .images import decode_rgb
from .labels import label_shard_writer

log = logging.getLogger(__name__)


class ShardImages(Dataset):
    """Manifest entries -> (position, uint8 image, None), or (position, None, error message)
    for an image that can't be used: errors travel as data, so a worker's failure reaches the
    user as its one-line message rather than a worker traceback."""

    def __init__(self, entries, data_root, prepare=None):
        self.entries = entries
        self.data_root = Path(data_root)
        self.prepare = prepare

    def __len__(self):
        return len(self.entries)

    def load(self, position):
        entry = self.entries[position]
        path = self.data_root / entry["file_name"]
        image = decode_rgb(path)
        expected = (entry["height"], entry["width"])
        if tuple(image.shape[1:]) != expected:
            raise SegsubmitError(
                f"{path}: decoded size {image.shape[2]}x{image.shape[1]} (after EXIF rotation) "
                f"differs from the json's width x height {expected[1]}x{expected[0]}; fix the json"
            )
        return self.prepare(image) if self.prepare else image

    def __getitem__(self, position):
        try:
            return position, self.load(position), None
        except SegsubmitError as err:
            return position, None, str(err)


def size_buckets(entries, batch_size):
    """Batches of positions whose images share one size, in manifest order within a size."""
    by_size = {}
    for position, entry in enumerate(entries):
        by_size.setdefault((entry["height"], entry["width"]), []).append(position)
    return [
        positions[start : start + batch_size]
        for positions in by_size.values()
        for start in range(0, len(positions), batch_size)
    ]


def collate_same_size(samples, pin_memory, on_bad_image):
    """Stack the usable images into one uint8 batch (pinned for an asynchronous copy to the
    GPU); unusable ones raise, or with on_bad_image 'blank' are listed as blank positions."""
    errors = [error for _, _, error in samples if error]
    if errors and on_bad_image != "blank":
        raise SegsubmitError(errors[0])
    good = [(position, image) for position, image, error in samples if not error]
    batch = torch.stack([image for _, image in good]) if good else None
    if batch is not None and pin_memory:
        batch = batch.pin_memory()
    blank_positions = [position for position, _, error in samples if error]
    return [position for position, _ in good], batch, blank_positions


def batches_from_items(items, buckets, pin_memory, on_bad_image):
    """Group the loader's per-image items (in bucket order) back into the buckets' batches.

    Workers load single images, so every batch is decoded by all workers in parallel."""
    items = iter(items)
    for bucket in buckets:
        yield collate_same_size([next(items) for _ in bucket], pin_memory, on_bad_image)


def predict_with_backoff(predictor, batch, size):
    """Predict a batch; on CUDA out-of-memory, halve it and retry (no image lost or repeated)."""
    try:
        return predictor.predict(batch, size)
    except torch.cuda.OutOfMemoryError:
        if len(batch) == 1:
            raise
        torch.cuda.empty_cache()
        half = len(batch) // 2
        log.warning(
            "CUDA out of memory at batch %d; retrying as %d + %d",
            len(batch),
            half,
            len(batch) - half,
        )
        return torch.cat(
            [
                predict_with_backoff(predictor, batch[:half], size),
                predict_with_backoff(predictor, batch[half:], size),
            ]
        )


def probe_batch(predictor, entry, batch_size):
    """A zero batch shaped like `batch_size` prepared images of `entry`'s size, on the device."""
    image = torch.zeros((3, entry["height"], entry["width"]), dtype=torch.uint8)
    prepared = predictor.prepare(image) if predictor.prepare else image
    return prepared.to(predictor.device).expand(batch_size, *prepared.shape).contiguous()


def largest_batch_size(predictor, entry, limit=256):
    """`infer.batch_size: auto`: the largest power of two (<= limit) whose forward pass fits on
    the GPU, probed once on `entry`'s image size; 1 on the CPU, where batching does not pay."""
    if predictor.device.type != "cuda":
        log.info("batch_size auto: 1 on %s", predictor.device)
        return 1
    fits = 1
    while fits * 2 <= limit:
        try:
            predictor.predict(
                probe_batch(predictor, entry, fits * 2), (entry["height"], entry["width"])
            )
        except torch.cuda.OutOfMemoryError:
            break
        finally:
            torch.cuda.empty_cache()
        fits *= 2
    log.info("batch_size auto: %d fits on %s", fits, torch.cuda.get_device_name(predictor.device))
    return fits


def batch_predictions(loader, entries, predictor):
    """Yield (positions, uint8 label maps on the host, blank?) per batch, in loader order;
    unreadable images (on_bad_image: blank) come as all-background maps with blank=True.

    On CUDA the copy of batch k to (pinned) host memory is queued right behind its kernels and
    awaited only after batch k+1 was launched, so the GPU never waits for the host.
    """
    pending = None
    for positions, batch, blank_positions in loader:
        launched = None
        if batch is not None:
            first = entries[positions[0]]
            size = (first["height"], first["width"])
            labels = predict_with_backoff(
                predictor, batch.to(predictor.device, non_blocking=True), size
            )
            launched = (positions, to_host_async(labels))
        if pending is not None:
            yield pending[0], finish_host_copy(pending[1]), False
        pending = launched
        for position in blank_positions:
            entry = entries[position]
            yield [position], [np.zeros((entry["height"], entry["width"]), np.uint8)], True
    if pending is not None:
        yield pending[0], finish_host_copy(pending[1]), False


def to_host_async(labels):
    """Start copying labels to the host; returns what `finish_host_copy` needs."""
    if labels.device.type != "cuda":
        return labels, None
    host = torch.empty(labels.shape, dtype=labels.dtype, pin_memory=True)
    host.copy_(labels, non_blocking=True)
    done = torch.cuda.Event()
    done.record()
    return host, done


def finish_host_copy(copy):
    """Wait for a copy started by `to_host_async`; the labels as a numpy array."""
    host, done = copy
    if done is not None:
        done.synchronize()
    return host.numpy()


def iter_shard_predictions(entries, data_root, predictor, batch_size, workers, on_bad_image):
    """Yield (position in `entries`, label map) for every image, grouped by size, with progress."""
    if batch_size == "auto":
        batch_size = largest_batch_size(predictor, entries[0]) if entries else 1
    buckets = size_buckets(entries, batch_size)
    items = DataLoader(
        ShardImages(entries, data_root, predictor.prepare),
        batch_size=None,
        sampler=[position for bucket in buckets for position in bucket],
        num_workers=workers,
        prefetch_factor=max(2, 2 * batch_size // workers) if workers else None,
    )
    loader = batches_from_items(items, buckets, predictor.device.type == "cuda", on_bad_image)
    blank_files = []
    with tqdm(total=len(entries), desc="infer", unit="img") as progress:
        for positions, label_maps, blank in batch_predictions(loader, entries, predictor):
            if blank:
                blank_files.extend(entries[position]["file_name"] for position in positions)
            yield from zip(positions, label_maps, strict=True)
            progress.update(len(positions))
    if blank_files:
        log.warning(
            "on_bad_image=blank: all-background masks for %d unreadable images: %s",
            len(blank_files),
            ", ".join(blank_files),
        )


def predict_shard(entries, data_root, predictor, batch_size, workers, on_bad_image="error"):
    """Label maps (uint8 numpy, original size) for `entries`, in their order."""
    label_maps = [None] * len(entries)
    predictions = iter_shard_predictions(
        entries, data_root, predictor, batch_size, workers, on_bad_image
    )
    for position, label_map in predictions:
        label_maps[position] = label_map
    return label_maps


def predict_shard_to_file(
    entries, data_root, predictor, batch_size, workers, on_bad_image, labels_path
):
    """Stream every image's label map into `labels_path` as it is predicted (flat memory)."""
    total_pixels = sum(entry["height"] * entry["width"] for entry in entries)
    predictions = iter_shard_predictions(
        entries, data_root, predictor, batch_size, workers, on_bad_image
    )
    with label_shard_writer(labels_path, total_pixels) as add:
        for position, label_map in predictions:
            add(entries[position]["id"], label_map)
