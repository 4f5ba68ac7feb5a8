"""Per-shard label-map files: uint8 maps of any sizes plus their image ids, in an `.npz` that
numpy alone loads (no model, no pickle). Maps are streamed into the file one by one, so writing
a shard needs memory for one batch, not for the shard; the maps are stored uncompressed, so
reading memory-maps them instead of copying them out of the zip."""

import contextlib
import struct
import zipfile

import numpy as np

from .atomic import atomic_path


def _save_member(archive, name, array):
    with archive.open(name, "w", force_zip64=True) as stream:
        np.lib.format.write_array(stream, np.asarray(array))


@contextlib.contextmanager
def label_shard_writer(path, total_pixels, warnings=(), token=""):
    """Yield `add(image_id, label_map)`; the file appears under `path` only once complete.

    `total_pixels` (sum of H*W over the shard) sizes the labels array up front. `warnings`
    (one-line strings; a list may still be filled inside the `with` block) are stored with the
    maps, for `read_shard_warnings`; `token` (ASCII) is the zip's comment (`ahead.labels_token`).
    """
    image_ids, shapes = [], []
    with atomic_path(path) as tmp_path, zipfile.ZipFile(tmp_path, "w") as archive:
        archive.comment = token.encode("ascii")
        with archive.open("labels.npy", "w", force_zip64=True) as stream:
            header = {"descr": "|u1", "fortran_order": False, "shape": (total_pixels,)}
            np.lib.format.write_array_header_1_0(stream, header)

            def add(image_id, label_map):
                stream.write(np.ascontiguousarray(label_map, dtype=np.uint8))
                image_ids.append(image_id)
                shapes.append(label_map.shape)

            yield add
        written = sum(height * width for height, width in shapes)
        if written != total_pixels:
            raise ValueError(f"{path}: wrote {written} label pixels, expected {total_pixels}")
        _save_member(archive, "image_ids.npy", np.array(image_ids, dtype=np.int64))
        _save_member(archive, "shapes.npy", np.array(shapes, dtype=np.int64).reshape(-1, 2))
        _save_member(archive, "warnings.npy", np.array(list(warnings), dtype=str))


def write_label_shard(path, image_ids, label_maps, warnings=()):
    """Save label maps (uint8, HxW each, sizes may differ) with their image ids, atomically."""
    with label_shard_writer(path, sum(m.size for m in label_maps), warnings) as add:
        for image_id, label_map in zip(image_ids, label_maps, strict=True):
            add(image_id, label_map)


HEADER_READERS = {
    (1, 0): np.lib.format.read_array_header_1_0,
    (2, 0): np.lib.format.read_array_header_2_0,
}


def stored_member(path, name):
    """(file offset of the data, shape, dtype) of the .npy member `name` of the zip at `path`;
    None when it is compressed or has a header version numpy's readers here do not know."""
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(name)
    if info.compress_type != zipfile.ZIP_STORED:
        return None
    with open(path, "rb") as handle:
        handle.seek(info.header_offset)
        local_header = handle.read(zipfile.sizeFileHeader)
        name_length, extra_length = struct.unpack("<HH", local_header[26:30])
        handle.seek(info.header_offset + zipfile.sizeFileHeader + name_length + extra_length)
        version = np.lib.format.read_magic(handle)
        if version not in HEADER_READERS:
            return None
        shape, fortran_order, dtype = HEADER_READERS[version](handle)
        offset = handle.tell()
    return None if fortran_order else (offset, shape, dtype)


def _stored_uint8_offset(path, name):
    """(offset, shape) of a stored (uncompressed), non-empty uint8 .npy member of a zip; None
    for anything else (then numpy reads it the usual way)."""
    stored = stored_member(path, name)
    if stored is None or stored[2] != np.uint8 or not np.prod(stored[1]):
        return None
    return stored[0], stored[1]


class LabelShard:
    """A label-shard file's image ids, with its maps read on demand, a span at a time, each
    span its own memory map (no copy; unmapped when dropped): a stage holds the maps it works
    on, not the shard, so its memory does not grow with the number of images."""

    def __init__(self, path):
        self.path = path
        stored = _stored_uint8_offset(path, "labels.npy")
        with np.load(path) as shard:
            image_ids, self.shapes = shard["image_ids"], shard["shapes"]
            self.flat = None if stored else shard["labels"]
        self.offset = stored[0] if stored else None
        self.image_ids = image_ids.tolist()
        sizes = self.shapes.prod(axis=1)
        self.ends = np.cumsum(sizes)
        self.starts = self.ends - sizes

    def __len__(self):
        return len(self.image_ids)

    def read_span(self, first, stop):
        """The maps at positions first..stop-1, from one read."""
        if first >= stop:
            return []
        start, end = int(self.starts[first]), int(self.ends[stop - 1])
        if self.flat is None:  # a copy-on-write map of the span alone, unmapped once dropped
            data = np.memmap(self.path, np.uint8, "c", self.offset + start, (end - start,))
            data = data.view(np.ndarray)
        else:
            data = self.flat[start:end]
        return [
            data[begin - start : finish - start].reshape(height, width)
            for begin, finish, (height, width) in zip(
                self.starts[first:stop], self.ends[first:stop], self.shapes[first:stop], strict=True
            )
        ]

    def read(self, position):
        """The map at `position`, copied out of the file (a memory map per map would hold a
        file descriptor per map)."""
        if self.flat is not None:
            return self.read_span(position, position + 1)[0]
        start, (height, width) = int(self.starts[position]), self.shapes[position]
        data = np.fromfile(self.path, np.uint8, count=height * width, offset=self.offset + start)
        return data.reshape(height, width)

    def spans(self, length):
        """(image ids, maps) of consecutive spans of at most `length` maps, in file order."""
        for first in range(0, len(self), length):
            stop = min(first + length, len(self))
            yield self.image_ids[first:stop], self.read_span(first, stop)


def read_label_shard(path):
    """(image_ids, HxW uint8 label maps) from a file written by `write_label_shard`; the maps
    are views of one (copy-on-write) memory map of the file: one (N, H, W) array when they all
    have one size, else a list."""
    stored = _stored_uint8_offset(path, "labels.npy")
    # copy-on-write: readers get writable arrays (torch.from_numpy needs them), the file is safe
    flat = stored and np.memmap(path, np.uint8, "c", stored[0], stored[1]).view(np.ndarray)
    with np.load(path) as shard:
        image_ids, shapes = shard["image_ids"], shard["shapes"]
        if flat is None:
            flat = shard["labels"]
    if len(shapes) and (shapes == shapes[0]).all():
        return image_ids.tolist(), flat.reshape(len(shapes), *shapes[0])
    ends = np.cumsum(shapes.prod(axis=1))
    starts = ends - shapes.prod(axis=1)
    maps = [flat[s:e].reshape(h, w) for s, e, (h, w) in zip(starts, ends, shapes, strict=True)]
    return image_ids.tolist(), maps


def read_shard_warnings(path):
    """The warnings stored with a label shard (machine-readable: one line each)."""
    with np.load(path) as shard:
        return shard["warnings"].tolist() if "warnings" in shard.files else []


def maps_in_order(image_ids, shard_paths):
    """The label maps of `image_ids`, in that order, read one at a time (lazily) from
    per-shard label files."""
    shards = [LabelShard(path) for path in shard_paths]
    where = {
        image_id: (shard, position)
        for shard in shards
        for position, image_id in enumerate(shard.image_ids)
    }
    for image_id in image_ids:
        shard, position = where[image_id]
        yield shard.read(position)


def batched(iterable, size):
    """Lists of up to `size` consecutive items."""
    batch = []
    for item in iterable:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
