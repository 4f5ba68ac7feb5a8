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

log = logging.getLogger(__name__)


class ShardImages(Dataset):
    """Manifest entries -> (position, uint8 RGB image); bad images give None in 'blank' mode."""

    def __init__(self, entries, data_root, on_bad_image="error", prepare=None):
        self.entries = entries
        self.data_root = Path(data_root)
        self.on_bad_image = on_bad_image
        self.prepare = prepare

    def __len__(self):
        return len(self.entries)

    def __getitem__(self, position):
        entry = self.entries[position]
        path = self.data_root / entry["file_name"]
        try:
            image = decode_rgb(path)
        except SegsubmitError:
            if self.on_bad_image == "blank":
                return position, None
            raise
        expected = (entry["height"], entry["width"])
        if tuple(image.shape[1:]) != expected:
            raise SegsubmitError(
                f"{path}: decoded size {image.shape[2]}x{image.shape[1]} (after EXIF rotation) "
                f"differs from the json's width x height {expected[1]}x{expected[0]}; fix the json"
            )
        return position, self.prepare(image) if self.prepare else image


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


def collate_same_size(samples):
    """Stack decodable images into one uint8 batch; list the positions of the blank ones."""
    good = [(position, image) for position, image in samples if image is not None]
    blank_positions = [position for position, image in samples if image is None]
    batch = torch.stack([image for _, image in good]) if good else None
    return [position for position, _ in good], batch, blank_positions


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


def predict_shard(entries, data_root, predictor, batch_size, workers, on_bad_image="error"):
    """Label maps (uint8 numpy, original size) for `entries`, in their order."""
    dataset = ShardImages(entries, data_root, on_bad_image, predictor.prepare)
    loader = DataLoader(
        dataset,
        batch_sampler=size_buckets(entries, batch_size),
        collate_fn=collate_same_size,
        num_workers=workers,
        pin_memory=predictor.device.type == "cuda",
    )
    label_maps = [None] * len(entries)
    blank_files = []
    with tqdm(total=len(entries), desc="infer", unit="img") as progress:
        for positions, batch, blank_positions in loader:
            if batch is not None:
                first = entries[positions[0]]
                labels = predict_with_backoff(
                    predictor,
                    batch.to(predictor.device, non_blocking=True),
                    (first["height"], first["width"]),
                )
                for position, label_map in zip(positions, labels.cpu().numpy(), strict=True):
                    label_maps[position] = label_map
            for position in blank_positions:
                entry = entries[position]
                label_maps[position] = np.zeros((entry["height"], entry["width"]), np.uint8)
                blank_files.append(entry["file_name"])
            progress.update(len(positions) + len(blank_positions))
    if blank_files:
        log.warning(
            "on_bad_image=blank: all-background masks for %d unreadable images: %s",
            len(blank_files),
            ", ".join(blank_files),
        )
    return label_maps
