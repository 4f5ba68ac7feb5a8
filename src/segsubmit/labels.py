"""Per-shard label-map files: uint8 maps of any sizes plus their image ids, loadable with numpy
alone (no model, no pickle)."""

import numpy as np

from .atomic import atomic_path


def write_label_shard(path, image_ids, label_maps):
    """Save label maps (uint8, HxW each, sizes may differ) with their image ids, atomically."""
    shapes = np.array([m.shape for m in label_maps], dtype=np.int64).reshape(-1, 2)
    flat = (
        np.concatenate([np.ascontiguousarray(m, dtype=np.uint8).ravel() for m in label_maps])
        if label_maps
        else np.zeros(0, np.uint8)
    )
    with atomic_path(path) as tmp_path, open(tmp_path, "wb") as handle:
        np.savez(
            handle, image_ids=np.asarray(image_ids, dtype=np.int64), shapes=shapes, labels=flat
        )


def read_label_shard(path):
    """(image_ids, list of HxW uint8 label maps) from a file written by `write_label_shard`."""
    with np.load(path) as shard:
        image_ids, shapes, flat = shard["image_ids"], shard["shapes"], shard["labels"]
    ends = np.cumsum(shapes.prod(axis=1))
    starts = ends - shapes.prod(axis=1)
    maps = [flat[s:e].reshape(h, w) for s, e, (h, w) in zip(starts, ends, shapes, strict=True)]
    return image_ids.tolist(), maps
