"""Per-shard label-map files: uint8 maps of any sizes plus their image ids, in an `.npz` that
numpy alone loads (no model, no pickle). Maps are streamed into the file one by one, so writing
a shard needs memory for one batch, not for the shard."""

import contextlib
import zipfile

import numpy as np

from .atomic import atomic_path


def _save_member(archive, name, array):
    with archive.open(name, "w", force_zip64=True) as stream:
        np.lib.format.write_array(stream, np.asarray(array))


@contextlib.contextmanager
def label_shard_writer(path, total_pixels):
    """Yield `add(image_id, label_map)`; the file appears under `path` only once complete.

    `total_pixels` (sum of H*W over the shard) sizes the labels array up front.
    """
    image_ids, shapes = [], []
    with atomic_path(path) as tmp_path, zipfile.ZipFile(tmp_path, "w") as archive:
        with archive.open("labels.npy", "w", force_zip64=True) as stream:
            header = {"descr": "|u1", "fortran_order": False, "shape": (total_pixels,)}
            np.lib.format.write_array_header_1_0(stream, header)

            def add(image_id, label_map):
                stream.write(np.ascontiguousarray(label_map, dtype=np.uint8).tobytes())
                image_ids.append(image_id)
                shapes.append(label_map.shape)

            yield add
        written = sum(height * width for height, width in shapes)
        if written != total_pixels:
            raise ValueError(f"{path}: wrote {written} label pixels, expected {total_pixels}")
        _save_member(archive, "image_ids.npy", np.array(image_ids, dtype=np.int64))
        _save_member(archive, "shapes.npy", np.array(shapes, dtype=np.int64).reshape(-1, 2))


def write_label_shard(path, image_ids, label_maps):
    """Save label maps (uint8, HxW each, sizes may differ) with their image ids, atomically."""
    with label_shard_writer(path, sum(m.size for m in label_maps)) as add:
        for image_id, label_map in zip(image_ids, label_maps, strict=True):
            add(image_id, label_map)


def read_label_shard(path):
    """(image_ids, list of HxW uint8 label maps) from a file written by `write_label_shard`."""
    with np.load(path) as shard:
        image_ids, shapes, flat = shard["image_ids"], shard["shapes"], shard["labels"]
    ends = np.cumsum(shapes.prod(axis=1))
    starts = ends - shapes.prod(axis=1)
    maps = [flat[s:e].reshape(h, w) for s, e, (h, w) in zip(starts, ends, shapes, strict=True)]
    return image_ids.tolist(), maps
