"""Batched inference over one shard: decode in DataLoader workers, predict on the device,
keep only uint8 argmax maps on the host."""

import contextlib
import logging
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from .backends.base import (
    has_probabilities,
    host_transform,
    load_predictor,
    probe_predictor,
    resolve_device,
)
from .errors import SegsubmitError
from .gpus import claim_device
from .images import decode_rgb
from .labels import label_shard_writer
from .logs import format_rate
from .manifest import Manifest
from .probabilities import blank_outputs, derived_outputs, probability_shard_writer
from .tta import with_tta

log = logging.getLogger(__name__)


class ShardImages(Dataset):
    """Manifest entries -> (position, uint8 image, None), or (position, None, error message)
    for an image that can't be used: errors travel as data, so a worker's failure reaches the
    user as its one-line message rather than a worker traceback."""

    def __init__(self, entries, data_root, transform=None, max_pixels=None):
        self.entries = entries
        self.data_root = Path(data_root)
        self.transform = transform
        self.max_pixels = max_pixels

    def __len__(self):
        return len(self.entries)

    def load(self, position):
        entry = self.entries[position]
        path = self.data_root / entry.path  # the file the manifest resolved and hashed
        image = decode_rgb(path, self.max_pixels)
        expected = entry.size
        if tuple(image.shape[1:]) != expected:
            raise SegsubmitError(
                f"{path}: decoded size {image.shape[2]}x{image.shape[1]} (after EXIF rotation) "
                f"differs from the json's width x height {expected[1]}x{expected[0]}; fix the json"
            )
        return self.transform(image) if self.transform else image

    def __getitem__(self, position):
        try:
            return position, self.load(position), None
        except SegsubmitError as err:
            return position, None, str(err)


def size_buckets(entries, batch_size):
    """Batches of positions whose images share one size, in manifest order within a size."""
    by_size = {}
    for position, entry in enumerate(entries):
        by_size.setdefault(entry.size, []).append(position)
    return [
        positions[start : start + batch_size]
        for positions in by_size.values()
        for start in range(0, len(positions), batch_size)
    ]


def stack_same_size(samples):
    """Collate one bucket in a DataLoader worker: (positions, uint8 batch or None, failures),
    where failures are (position, one-line message) of images that could not be used."""
    good = [(position, image) for position, image, error in samples if not error]
    failures = [(position, error) for position, _, error in samples if error]
    batch = torch.stack([image for _, image in good]) if good else None
    return [position for position, _ in good], batch, failures


def predict_outputs(predictor, batch, size, outputs=None):
    """{"labels": uint8 maps, and the wanted `outputs` (a `ProbabilityOutputs`)} of a batch, on
    the device; without `outputs` the predictor's own labels path alone."""
    if outputs is None:
        return {"labels": predictor.predict(batch, size)}
    labels, probabilities = predictor.predict_probabilities(batch, size)
    return {"labels": labels, **derived_outputs(labels, probabilities, outputs)}


def predict_with_backoff(predictor, batch, size, outputs=None):
    """`predict_outputs` of a batch; on CUDA out-of-memory, halve it and retry (no image lost
    or repeated)."""
    try:
        return predict_outputs(predictor, batch, size, outputs)
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
        first = predict_with_backoff(predictor, batch[:half], size, outputs)
        second = predict_with_backoff(predictor, batch[half:], size, outputs)
        return {name: torch.cat([first[name], second[name]]) for name in first}


def probe_batch(predictor, transform, entry, batch_size):
    """A zero batch shaped like `batch_size` host-transformed images of `entry`'s size, on the
    device."""
    image = torch.zeros((3, *entry.size), dtype=torch.uint8)
    prepared = transform(image) if transform else image
    return prepared.to(predictor.device).expand(batch_size, *prepared.shape).contiguous()


def largest_batch_size(predictor, transform, entry, limit=256):
    """`infer.batch_size: auto`: the largest power of two (<= limit) whose forward pass fits on
    the GPU, probed once on `entry`'s image size; 1 on the CPU, where batching does not pay."""
    if predictor.device.type != "cuda":
        log.info("batch_size auto: 1 on %s", predictor.device)
        return 1
    fits = 1
    while fits * 2 <= limit:
        try:
            predictor.predict(
                probe_batch(predictor, transform, entry, fits * 2),
                entry.size,
            )
        except torch.cuda.OutOfMemoryError:
            break
        finally:
            torch.cuda.empty_cache()
        fits *= 2
    log.info("batch_size auto: %d fits on %s", fits, torch.cuda.get_device_name(predictor.device))
    return fits


def batch_predictions(loader, entries, predictor, on_bad_image, outputs=None):
    """Yield (positions, {output name: host arrays}, blank?) per batch, in loader order (names:
    "labels", the uint8 label maps, and those of `outputs`); unusable images raise their
    one-line error, or with on_bad_image 'blank' come as all-background maps with blank=True.

    On CUDA the copy of batch k to (pinned) host memory is queued right behind its kernels and
    awaited only after batch k+1 was launched, so the GPU never waits for the host.
    """
    pending = None
    for positions, batch, failures in loader:
        if failures and on_bad_image != "blank":
            raise SegsubmitError(failures[0][1])
        launched = None
        if batch is not None:
            size = entries[positions[0]].size
            predicted = predict_with_backoff(
                predictor, batch.to(predictor.device, non_blocking=True), size, outputs
            )
            launched = (positions, to_host_async(predicted))
        if pending is not None:
            yield pending[0], finish_host_copy(pending[1]), False
        pending = launched
        for position, _ in failures:
            yield [position], blank_prediction(entries[position].size, predictor, outputs), True
    if pending is not None:
        yield pending[0], finish_host_copy(pending[1]), False


def blank_prediction(shape, predictor, outputs):
    """{output name: [array]} of one unusable image: all background, nothing confident."""
    blank = {"labels": np.zeros(shape, np.uint8)}
    if outputs is not None:
        blank.update(blank_outputs(shape, predictor.num_classes, outputs))
    return {name: [array] for name, array in blank.items()}


def to_host_async(tensors):
    """Start copying {name: device tensor} to the host; returns what `finish_host_copy`
    needs."""
    if next(iter(tensors.values())).device.type != "cuda":
        return tensors, None
    hosts = {}
    for name, tensor in tensors.items():
        hosts[name] = torch.empty(tensor.shape, dtype=tensor.dtype, pin_memory=True)
        hosts[name].copy_(tensor, non_blocking=True)
    done = torch.cuda.Event()
    done.record()
    return hosts, done


def finish_host_copy(copy):
    """Wait for a copy started by `to_host_async`; {name: numpy array}."""
    hosts, done = copy
    if done is not None:
        done.synchronize()
    return {name: host.numpy() for name, host in hosts.items()}


def shard_loader(entries, data_root, transform, device, batch_size, workers, max_pixels=None):
    """Batches of one image size, decoded (and `transform`ed) and stacked in the workers,
    pinned by the loader's own thread for a GPU `device`."""
    return DataLoader(
        ShardImages(entries, data_root, transform, max_pixels),
        batch_sampler=size_buckets(entries, batch_size),
        collate_fn=stack_same_size,
        num_workers=workers,
        pin_memory=device.type == "cuda",
    )


def iter_shard_predictions(
    loader, entries, predictor, batch_size, workers, on_bad_image, outputs=None
):
    """Yield (position in `entries`, {output name: array}) for every image of `loader`'s
    batches (from `shard_loader`), grouped by size, with progress; `batch_size` and `workers`
    are logged."""
    blank_files = []
    started = time.perf_counter()
    batches = batch_predictions(loader, entries, predictor, on_bad_image, outputs)
    with (
        logging_redirect_tqdm(),  # log lines go above the bar instead of through it
        tqdm(total=len(entries), desc="infer", unit="img", file=sys.stderr) as progress,
    ):
        for positions, predicted, blank in batches:
            if not progress.n:
                log.info("infer: first batch back after %.2f s", time.perf_counter() - started)
            if blank:
                blank_files.extend(entries[position].file_name for position in positions)
            for index, position in enumerate(positions):
                yield position, {name: arrays[index] for name, arrays in predicted.items()}
            progress.update(len(positions))
    seconds = time.perf_counter() - started
    log.info(
        "infer: %d images in %.2f s (%s images/s, batch size %d, %d workers)",
        len(entries),
        seconds,
        format_rate(len(entries), seconds),
        batch_size,
        workers,
    )
    if blank_files:
        log.warning(
            "on_bad_image=blank: all-background masks for %d unreadable images: %s",
            len(blank_files),
            ", ".join(blank_files),
        )


def prediction_warnings(labels_path, image_count, nonfinite_count, uniform_classes):
    """One-line warnings for predictions that make no sense: images whose logits held NaN or
    infinity, or a shard where every map is a single class (`uniform_classes`: the classes of
    the maps if each is one class, else None)."""
    warnings = []
    if nonfinite_count:
        warnings.append(
            f"{labels_path}: {nonfinite_count} of {image_count} images had non-finite logits "
            "(NaN or infinity); their maps are meaningless: check the weights, model.mean/std "
            "and infer.precision"
        )
    if image_count and uniform_classes is not None:
        warnings.append(
            f"{labels_path}: every one of the {image_count} maps is a single class "
            f"({', '.join(map(str, sorted(uniform_classes)))}); check the weights and "
            "model.mean/std"
        )
    return warnings


def output_writers(stack, outputs, entries, num_classes):
    """{output name: add(image_id, array)} of the wanted `outputs`' shard files, entered on
    `stack` (each file appears only once complete)."""
    count, total_pixels = len(entries), sum(entry.height * entry.width for entry in entries)
    sizes = {"area_labels": count * outputs.size[0] * outputs.size[1] if outputs.size else 0}
    writers = {}
    for name, path in outputs.paths.items():
        if name == "probabilities":
            writer = probability_shard_writer(path, count, num_classes, outputs.size)
        else:
            writer = label_shard_writer(path, sizes.get(name, total_pixels))
        writers[name] = stack.enter_context(writer)
    return writers


def predict_shard_to_file(
    loader, entries, predictor, batch_size, workers, on_bad_image, labels_path, outputs=None
):
    """Stream every image's label map into `labels_path` (None: no label file) and the wanted
    `outputs` into theirs as it is predicted (flat memory), with the shard's
    `prediction_warnings` (also logged)."""
    total_pixels = sum(entry.height * entry.width for entry in entries)
    predictions = iter_shard_predictions(
        loader, entries, predictor, batch_size, workers, on_bad_image, outputs
    )
    warnings, uniform_classes = [], set()
    with contextlib.ExitStack() as stack:
        extra = output_writers(stack, outputs, entries, predictor.num_classes) if outputs else {}
        if labels_path:
            extra["labels"] = stack.enter_context(
                label_shard_writer(labels_path, total_pixels, warnings)
            )
        for position, predicted in predictions:
            label_map = predicted["labels"]
            for name, add_extra in extra.items():
                add_extra(entries[position].id, predicted[name])
            low, high = (label_map.min(), label_map.max()) if label_map.size else (0, 0)
            if uniform_classes is not None:
                uniform_classes = uniform_classes | {int(low)} if low == high else None
        nonfinite = int(predictor.nonfinite)
        named = labels_path or next(iter(outputs.paths.values()))
        warnings += prediction_warnings(named, len(entries), nonfinite, uniform_classes)
    for warning in warnings:
        log.warning("%s", warning)


GPU_WORKERS = 8  # H200, 819 512² JPEGs: 8 workers beat 14 for smp, transformers and mmseg


def resolve_workers(workers, device):
    """`infer.workers`: a count as it is; auto -> on CUDA `GPU_WORKERS`, or every CPU this
    process may use but two (the main process, the loader's pinning thread) where that is fewer,
    at least 1; on a CPU device min(4, CPUs - 1) (the model's own threads need the rest)."""
    if workers != "auto":
        return workers
    cpus = len(os.sched_getaffinity(0))
    if device.type == "cuda":
        return max(1, min(GPU_WORKERS, cpus - 2))
    return max(0, min(4, cpus - 1))


def limit_host_threads(device):
    """On CUDA the main process only stacks and launches; a full intra-op thread pool there
    competes with the decoding workers (H100, 819 images: 1.9x -> 1.3x the model floor)."""
    if device.type == "cuda":
        torch.set_num_threads(2)


def claim_gpu_before_cuda(device):
    """`gpus.claim_device` for model.device auto/cuda: this job's own GPU among those visible,
    claimed before CUDA initialises (and before the DataLoader workers fork)."""
    if torch.cuda.is_initialized():
        log.warning("CUDA already initialised in this process: no GPU claimed")
        return None
    return claim_device(device)


def log_peak_memory():
    """Peak resident memory of this process and of its largest finished child (DataLoader
    workers): the job's memory record, as a cacheable rule has no Snakemake `benchmark:`."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    log.info("infer: peak memory %.2f GiB, largest child process %.2f GiB", own, children)


def infer_stage(shard_path, labels_path, model, infer, tta=None, outputs=None):
    """Stage entry: predict every image of a shard (`model`: `settings.ModelSettings`, `infer`:
    `settings.InferSettings`, `tta`: `settings.TTASettings`); write its argmax label maps
    (unless `labels_path` is None), and the outputs derived from class probabilities that
    `outputs` (a `probabilities.ProbabilityOutputs`) asks for.

    With a fixed batch size the DataLoader workers are started first: they fork from a small
    process and decode the first batches while the model is built and the GPU initialised.
    The model is then run once on each image size of the shard, so that an output it cannot
    give for one of them is refused before any image is predicted."""
    started = time.perf_counter()
    shard = Manifest.load(shard_path)
    entries, data_root = shard.images, shard.data_root
    claim_gpu_before_cuda(model.device)  # held until the process ends
    device = resolve_device(model.device)
    limit_host_threads(device)
    transform = host_transform(model, device)
    batch_size, max_pixels = infer.batch_size, infer.max_image_pixels
    workers = resolve_workers(infer.workers, device)
    loader = None
    if batch_size != "auto":
        loader = iter(
            shard_loader(entries, data_root, transform, device, batch_size, workers, max_pixels)
        )  # iter() forks the workers now
    predictor = with_tta(load_predictor(model, device), tta)
    if outputs is not None and not has_probabilities(predictor):
        raise SegsubmitError(
            f"model.backend {model.backend}: its predictor gives no class probabilities, which "
            "ensembles, resize.interpolation: probability, pseudo_labels.threshold and the "
            "report's probability-space row need; a backend without them declares "
            "`probabilities = False` (segsubmit.plugins.Backend)"
        )
    probe_predictor(predictor, shard.sizes(), transform)
    log.info(
        "infer: %d images on %s with %s; model ready %.2f s after the stage started",
        len(entries),
        predictor.device,
        model.backend,
        time.perf_counter() - started,
    )
    if tta is not None and tta.enabled:
        log.info("infer: test-time augmentation, %d views per image (%s)", tta.views, tta)
    if loader is None:
        batch_size = largest_batch_size(predictor, transform, entries[0]) if entries else 1
        loader = shard_loader(
            entries, data_root, transform, device, batch_size, workers, max_pixels
        )
    predict_shard_to_file(
        loader, entries, predictor, batch_size, workers, infer.on_bad_image, labels_path, outputs
    )
    log_peak_memory()
