"""What the infer job derives from class probabilities besides its argmax maps, on the device
per batch, and the per-shard file of fp16 probabilities some of them are stored in.

- `probabilities`: fp16 class probabilities at the submission size (an ensemble member's cached
  output), brought there by `sampling`: `nearest` takes, for every output pixel, the source
  pixel the resize backend's NEAREST rule picks for the label maps (found by resizing index maps
  with that backend), so a member's stored probabilities and its resized labels describe the same
  pixels; `area` averages each output pixel's source area (`torch.nn.functional.interpolate`,
  `mode="area"`).
- `area_labels`: the argmax of the area-averaged probabilities (probability-space resizing), uint8
  at the submission size.
- `confident_labels`: the argmax maps at the image's size with `ignore_index` wherever the top
  probability is below `threshold` (pseudo-labels).

Disk per image of `probabilities`: C x h x w x 2 bytes (11 classes, 256^2: 1.44 MB).
"""

import contextlib
import zipfile
from dataclasses import dataclass, fields
from functools import lru_cache

import numpy as np
import torch

from .atomic import atomic_path
from .errors import SegsubmitError
from .labels import stored_member

SAMPLINGS = ("nearest", "area")


@dataclass(frozen=True)
class ProbabilityOutputs:
    """Which extra outputs an infer job writes (paths; None: not wanted) and how."""

    probabilities: str | None = None
    area_labels: str | None = None
    confident_labels: str | None = None
    size: tuple | None = None  # (h, w) of `probabilities` and `area_labels`
    sampling: str = "nearest"
    resize_backend: str = "albumentations"
    threshold: float = 0.0
    ignore_index: int = 255

    @property
    def paths(self):
        """{output name: path} of the wanted outputs."""
        names = ("probabilities", "area_labels", "confident_labels")
        return {name: getattr(self, name) for name in names if getattr(self, name)}

    def __post_init__(self):
        if self.sampling not in SAMPLINGS:
            raise SegsubmitError(f"sampling: {self.sampling!r} unknown; choose one of {SAMPLINGS}")
        if (self.probabilities or self.area_labels) and self.size is None:
            raise ValueError("probabilities and area_labels need a size")

    @classmethod
    def from_params(cls, params):
        """From a rule's params dict (paths included), None when it asks for nothing."""
        if not params:
            return None
        known = {item.name for item in fields(cls)}
        values = {key: value for key, value in params.items() if key in known}
        if values.get("size") is not None:
            values["size"] = tuple(values["size"])
        return cls(**values)


@lru_cache(maxsize=16)
def nearest_sources(shape, size, resize_backend):
    """(rows, cols): (h, w) int64 arrays, the source pixel of every output pixel of the resize
    backend's NEAREST resize from `shape` (H, W) to `size` (h, w), found by resizing base-256
    digit maps of each pixel's row and column with that backend."""
    from .resize import resize_label_maps

    height, width = shape
    rows, cols = np.indices(shape)
    digits = [rows % 256, rows // 256, cols % 256, cols // 256]
    maps = resize_label_maps(np.stack(digits).astype(np.uint8), size, resize_backend).astype(
        np.int64
    )
    return maps[0] + 256 * maps[1], maps[2] + 256 * maps[3]


def sampled(probabilities, outputs):
    """(N, C, H, W) probabilities at `outputs.size` by `outputs.sampling`."""
    if tuple(probabilities.shape[-2:]) == tuple(outputs.size):
        return probabilities
    if outputs.sampling == "area":
        return area_averaged(probabilities, outputs.size)
    rows, cols = nearest_sources(
        tuple(probabilities.shape[-2:]), outputs.size, outputs.resize_backend
    )
    device = probabilities.device
    return probabilities[:, :, torch.from_numpy(rows).to(device), torch.from_numpy(cols).to(device)]


def area_averaged(probabilities, size):
    """The mean of each output pixel's source area (exact block means for whole factors)."""
    return torch.nn.functional.interpolate(probabilities, size=tuple(size), mode="area")


def derived_outputs(labels, probabilities, outputs):
    """{output name: device tensor (N, ...)} of `outputs`' wanted outputs for one batch:
    `labels` (N, H, W) uint8 and `probabilities` (N, C, H, W) float32 at the images' size."""
    derived = {}
    if outputs.probabilities:
        derived["probabilities"] = sampled(probabilities, outputs).to(torch.float16)
    if outputs.area_labels:
        area = area_averaged(probabilities, outputs.size)
        derived["area_labels"] = area.argmax(dim=1).to(torch.uint8)
    if outputs.confident_labels:
        unsure = probabilities.amax(dim=1) < outputs.threshold
        derived["confident_labels"] = labels.masked_fill(unsure, outputs.ignore_index)
    return derived


def blank_outputs(shape, num_classes, outputs):
    """What an unusable image (`infer.on_bad_image: blank`) gets: zero probabilities, background
    area labels, nothing confident."""
    blank = {}
    if outputs.probabilities:
        blank["probabilities"] = np.zeros((num_classes, *outputs.size), np.float16)
    if outputs.area_labels:
        blank["area_labels"] = np.zeros(outputs.size, np.uint8)
    if outputs.confident_labels:
        blank["confident_labels"] = np.full(shape, outputs.ignore_index, np.uint8)
    return blank


PROBABILITIES = "probabilities.npy"


@contextlib.contextmanager
def probability_shard_writer(path, count, num_classes, size):
    """Yield `add(image_id, probabilities)` for `count` (C, h, w) float16 arrays, streamed into
    one (count, C, h, w) array of an uncompressed `.npz` that appears under `path` only when
    complete."""
    image_ids = []
    shape = (count, num_classes, *size)
    with atomic_path(path) as tmp_path, zipfile.ZipFile(tmp_path, "w") as archive:
        with archive.open(PROBABILITIES, "w", force_zip64=True) as stream:
            header = {"descr": "<f2", "fortran_order": False, "shape": shape}
            np.lib.format.write_array_header_1_0(stream, header)

            def add(image_id, probabilities):
                if probabilities.shape != shape[1:]:
                    raise ValueError(
                        f"{path}: probabilities {probabilities.shape}, expected {shape[1:]}"
                    )
                stream.write(np.ascontiguousarray(probabilities, dtype="<f2"))
                image_ids.append(image_id)

            yield add
        if len(image_ids) != count:
            raise ValueError(f"{path}: wrote {len(image_ids)} images, expected {count}")
        with archive.open("image_ids.npy", "w") as stream:
            np.lib.format.write_array(stream, np.array(image_ids, dtype=np.int64))


def read_probability_shard(path):
    """(image ids, (N, C, h, w) float16 read-only memory map) of a `probability_shard_writer`
    file."""
    with np.load(path) as shard:
        image_ids = shard["image_ids"].tolist()
    offset, shape, dtype = stored_member(path, PROBABILITIES)
    return image_ids, np.memmap(path, dtype, "r", offset, shape)
