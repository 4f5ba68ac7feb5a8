"""Resize label maps to the submission size with Albumentations or Kornia, NEAREST by default
(or, by explicit choice, bilinear, guarded, or a block max over label ids, in numpy; or
`probability`: the infer stage's argmax of the area-averaged class probabilities, taken as
they are).

Both use the floor rule `src = floor(dst * in / out)`; for integer factors (512 -> 256) they are
identical (`m[::2, ::2]`). On some non-integer ratios Kornia (float32 index arithmetic) and
Albumentations/OpenCV (double) pick a different source pixel at a few indices.
"""

import logging
import math
import os
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .errors import SegsubmitError
from .labels import LabelShard, batched, label_shard_writer, read_shard_warnings

log = logging.getLogger(__name__)

RESIZE_BACKENDS = ("albumentations", "kornia")
INTERPOLATIONS = ("nearest", "bilinear", "block_max", "probability")


def check_interpolation(interpolation, allow_bilinear_labels):
    """NEAREST passes; bilinear only when explicitly allowed, with a warning."""
    if interpolation not in INTERPOLATIONS:
        raise SegsubmitError(
            f"resize.interpolation: {interpolation!r} unknown; choose one of {INTERPOLATIONS}"
        )
    if interpolation == "bilinear":
        if not allow_bilinear_labels:
            raise SegsubmitError(
                "resize.interpolation: bilinear invents classes at label boundaries; use nearest, "
                "or set resize.allow_bilinear_labels: true to reproduce that pitfall"
            )
        log.warning(
            "resize: bilinear interpolation of label maps (pitfall mode): "
            "boundary pixels get classes present in neither neighbour"
        )


def block_factors(shape, size):
    """(kh, kw) of a downsampling from `shape` (H, W) to `size` (h, w) by whole blocks; one
    line when a side is not a whole multiple (a block max needs kh x kw blocks)."""
    (height, width), (target_height, target_width) = shape, size
    if height % target_height or width % target_width:
        raise SegsubmitError(
            f"resize.interpolation: block_max needs sides that are whole multiples of "
            f"resize.size, and {height}x{width} -> {target_height}x{target_width} is not; use "
            "nearest"
        )
    return height // target_height, width // target_width


def resize_block_max(stack, size):
    """(N, H, W) uint8 -> (N, h, w): the largest label id of each kh x kw block (the 2x2 block
    max over label ids many competitors used, `reshape(h, 2, w, 2).max((1, 3))`, for any whole
    factor)."""
    count, height, width = stack.shape
    kh, kw = block_factors((height, width), size)
    return stack.reshape(count, size[0], kh, size[1], kw).max(axis=(2, 4))


def same_size_groups(label_maps):
    """{(H, W): [positions]} in first-seen order."""
    groups = {}
    for position, label_map in enumerate(label_maps):
        groups.setdefault(label_map.shape, []).append(position)
    return groups


def resize_albumentations(stack, size, interpolation):
    """(N, H, W) uint8 -> (N, h, w) with one `A.Resize` call on `masks=`."""
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    if "torch" not in sys.modules:
        # Albumentations imports its optional torch helpers, and so torch (seconds on a cold
        # machine), whenever torch is installed; resizing label maps needs none of them.
        sys.modules.setdefault("albumentations.pytorch", None)
    import albumentations as A
    import cv2

    flag = cv2.INTER_NEAREST if interpolation == "nearest" else cv2.INTER_LINEAR
    transform = A.Resize(size[0], size[1], interpolation=flag, mask_interpolation=flag)
    return np.asarray(transform(image=stack[0], masks=stack)["masks"], dtype=np.uint8)


def resize_kornia(stack, size, interpolation):
    """(N, H, W) uint8 -> (N, h, w) with `kornia.geometry.transform.resize`, no antialiasing."""
    import torch
    from kornia.geometry.transform import resize

    batch = torch.from_numpy(stack)[:, None]
    if interpolation == "nearest":  # uint8 in, uint8 out: nothing to round
        return resize(batch, size, interpolation="nearest", antialias=False)[:, 0].numpy()
    resized = resize(batch.float(), size, interpolation=interpolation, antialias=False)
    return resized[:, 0].round().clamp(0, 255).to(torch.uint8).numpy()


def resize_label_maps(label_maps, size, backend, interpolation="nearest"):
    """Every map (a list, or an (N, H, W) array) resized to `size` (h, w); returns a
    (N, h, w) uint8 array in input order."""
    if backend not in RESIZE_BACKENDS:
        raise SegsubmitError(
            f"resize.backend: {backend!r} unknown; choose one of {RESIZE_BACKENDS}"
        )
    resize_stack = resize_albumentations if backend == "albumentations" else resize_kornia
    if interpolation == "probability":
        raise ValueError("probability-space resizing needs class probabilities, not label maps")
    if interpolation == "block_max":  # numpy, whichever backend: no library has it
        resize_stack = lambda stack, size, _: resize_block_max(stack, size)  # noqa: E731
    if isinstance(label_maps, np.ndarray) and len(label_maps):  # one size, stacked already
        return resize_stack(label_maps, tuple(size), interpolation)
    output = np.empty((len(label_maps), *size), dtype=np.uint8)
    for positions in same_size_groups(label_maps).values():
        stack = np.stack([label_maps[p] for p in positions])
        output[positions] = resize_stack(stack, tuple(size), interpolation)
    return output


MAPS_AT_ONCE = 512  # maps resized per call: memory per span, not per shard


def area_label_spans(labels, area_labels_path, size):
    """Spans of the infer stage's probability-space maps (`area_labels_path`), checked to hold
    `labels`' images in order at `size`: the maps `resize.interpolation: probability` submits."""
    area = LabelShard(area_labels_path)
    if area.image_ids != labels.image_ids or any(tuple(s) != tuple(size) for s in area.shapes):
        raise SegsubmitError(
            f"{area_labels_path}: not the probability-space maps of {labels.path}'s images at "
            f"resize.size {list(size)}; delete it and run the workflow again"
        )
    return area.spans(MAPS_AT_ONCE)


def resized_spans(shard, size, backend, interpolation, threads):
    """(image ids, resized maps) of `shard`'s maps in order, `threads` spans at a time on as
    many threads (OpenCV's resize and the reads of the mapped file release the GIL): the spans
    in flight hold about `MAPS_AT_ONCE` maps, whatever the thread count."""

    def resize_span(span):
        image_ids, label_maps = span
        return image_ids, resize_label_maps(label_maps, tuple(size), backend, interpolation)

    spans = shard.spans(math.ceil(MAPS_AT_ONCE / threads))
    with ThreadPoolExecutor(threads) as pool:
        for group in batched(spans, threads):
            yield from pool.map(resize_span, group)


def resize_stage(
    labels_path,
    resized_path,
    backend,
    size,
    interpolation,
    allow_bilinear_labels,
    area_labels_path=None,
    threads=1,
):
    """Stage entry: resize a shard's label maps to the submission size, spans of them on
    `threads` threads; with `interpolation` probability, the infer stage's `area_labels_path`
    maps instead."""
    check_interpolation(interpolation, allow_bilinear_labels)
    shard = LabelShard(labels_path)
    warnings = read_shard_warnings(labels_path)  # carried on to the submission's report
    if interpolation == "probability":
        spans, how = area_label_spans(shard, area_labels_path, size), "area-averaged probabilities"
    else:
        spans = resized_spans(shard, size, backend, interpolation, max(1, threads or 1))
        how = f"{backend}, {interpolation}, {threads or 1} threads"
    with label_shard_writer(resized_path, len(shard) * size[0] * size[1], warnings) as add:
        for image_ids, resized in spans:
            for image_id, label_map in zip(image_ids, resized, strict=True):
                add(image_id, label_map)
    log.info("resize: %d maps -> %dx%d (%s)", len(shard), *size, how)
