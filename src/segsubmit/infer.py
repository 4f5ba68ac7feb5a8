"""Batched inference over one shard: decode in DataLoader workers, predict on the device,
keep only uint8 argmax maps on the host."""

import collections
import contextlib
import logging
import os
import resource
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from .ahead import ResizeAhead
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
    where failures are (position, one-line message) of images that could not be used; images
    that are tuples (`EachTransform`'s views) give a tuple of batches."""
    good = [(position, image) for position, image, error in samples if not error]
    failures = [(position, error) for position, _, error in samples if error]
    images = [image for _, image in good]
    if not images:
        batch = None
    elif isinstance(images[0], tuple):
        batch = tuple(torch.stack(views) for views in zip(*images, strict=True))
    else:
        batch = torch.stack(images)
    return [position for position, _ in good], batch, failures


@dataclass(frozen=True)
class EachTransform:
    """The host transform of a job whose models read one decode: each decoded image once per
    distinct transform (`transforms`; None: the image as decoded), as a tuple of views."""

    transforms: tuple

    def __call__(self, image):
        return tuple(transform(image) if transform else image for transform in self.transforms)


def shared_views(transforms):
    """(loader transform, view index per model) for models whose host transforms are
    `transforms`: models without one share the decoded image; each transform is its own view
    (transforms are opaque callables: two equal ones are not recognised)."""
    if all(transform is None for transform in transforms):
        return None, [None] * len(transforms)
    distinct, views = [], []
    for transform in transforms:
        if transform is None and None in distinct:
            views.append(distinct.index(None))
        else:
            views.append(len(distinct))
            distinct.append(transform)
    return EachTransform(tuple(distinct)), views


@dataclass(frozen=True)
class ModelJob:
    """One model's part of an infer job: its predictor, the view of each loader batch it reads
    (an index into `EachTransform`'s tuple; None when batches are one tensor), its label file
    (None: none written), the outputs derived from its probabilities (None: none) and the
    `ahead.ResizeAhead` its label maps also go to (None: none)."""

    predictor: object
    labels_path: object = None
    outputs: object = None
    view: int | None = None
    ahead: object = None

    def batch(self, loaded):
        return loaded if self.view is None else loaded[self.view]


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


def batch_predictions(loader, entries, jobs, on_bad_image):
    """Yield (positions, [{output name: host arrays} per `ModelJob`], blank?) per batch, in
    loader order (names: "labels", the uint8 label maps, and those of the job's `outputs`);
    unusable images raise their one-line error, or with on_bad_image 'blank' come as
    all-background maps with blank=True. Each batch is copied to the device once, whatever
    the number of models reading it.

    On CUDA the copy of batch k to (pinned) host memory is queued right behind its kernels and
    awaited only after batch k+1 was launched, so the GPU never waits for the host.
    """
    pending = None
    for positions, batch, failures in loader:
        if failures and on_bad_image != "blank":
            raise SegsubmitError(failures[0][1])
        launched = None
        if batch is not None:
            size, device = entries[positions[0]].size, jobs[0].predictor.device
            on_device = {}
            for job in jobs:
                if job.view not in on_device:  # setdefault would copy for every job
                    on_device[job.view] = job.batch(batch).to(device, non_blocking=True)
            launched = (
                positions,
                [
                    to_host_async(
                        predict_with_backoff(job.predictor, on_device[job.view], size, job.outputs)
                    )
                    for job in jobs
                ],
            )
        if pending is not None:
            yield pending[0], [finish_host_copy(copy) for copy in pending[1]], False
        pending = launched
        for position, _ in failures:
            shape = entries[position].size
            blanks = [blank_prediction(shape, job.predictor, job.outputs) for job in jobs]
            yield [position], blanks, True
    if pending is not None:
        yield pending[0], [finish_host_copy(copy) for copy in pending[1]], False


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


def iter_shard_predictions(loader, entries, jobs, batch_size, workers, on_bad_image):
    """`batch_predictions` of `loader`'s batches (from `shard_loader`) for every `ModelJob` of
    `jobs`, with progress; `batch_size` and `workers` are logged."""
    blank_files = []
    started = time.perf_counter()
    batches = batch_predictions(loader, entries, jobs, on_bad_image)
    with (
        logging_redirect_tqdm(),  # log lines go above the bar instead of through it
        tqdm(total=len(entries), desc="infer", unit="img", file=sys.stderr) as progress,
    ):
        for positions, predicted, blank in batches:
            if not progress.n:
                log.info("infer: first batch back after %.2f s", time.perf_counter() - started)
            if blank:
                blank_files.extend(entries[position].file_name for position in positions)
            yield positions, predicted, blank
            progress.update(len(positions))
    seconds = time.perf_counter() - started
    log.info(
        "infer: %d images in %.2f s (%s images/s, batch size %d, %d workers, %d models)",
        len(entries),
        seconds,
        format_rate(len(entries), seconds),
        batch_size,
        workers,
        len(jobs),
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


class ModelFiles:
    """The shard files one `ModelJob`'s predictions stream into (entered on `stack`: each
    appears only once complete), and what its `prediction_warnings` need."""

    def __init__(self, stack, job, entries):
        self.job, self.warnings, self.uniform_classes = job, [], set()
        self.writers = {}
        if job.outputs:
            num_classes = job.predictor.num_classes
            self.writers = output_writers(stack, job.outputs, entries, num_classes)
        if job.labels_path:
            total_pixels = sum(entry.height * entry.width for entry in entries)
            token = job.ahead.token if job.ahead is not None else ""
            writer = label_shard_writer(job.labels_path, total_pixels, self.warnings, token)
            self.writers["labels"] = stack.enter_context(writer)

    def add(self, image_id, predicted):
        """Write one image's {output name: array}."""
        for name, add_output in self.writers.items():
            add_output(image_id, predicted[name])
        label_map = predicted["labels"]
        if self.job.ahead is not None:
            self.job.ahead.add(image_id, label_map)
        low, high = (label_map.min(), label_map.max()) if label_map.size else (0, 0)
        if self.uniform_classes is not None:
            self.uniform_classes = self.uniform_classes | {int(low)} if low == high else None

    def add_warnings(self, image_count):
        """Its `prediction_warnings`, stored in its label file (which is still open)."""
        named = self.job.labels_path or next(iter(self.job.outputs.paths.values()))
        nonfinite = int(self.job.predictor.nonfinite)
        self.warnings += prediction_warnings(named, image_count, nonfinite, self.uniform_classes)


def write_batch(model_files, entries, positions, predicted):
    """Write one batch's predictions of one model (`predicted`: {output name: arrays})."""
    for index, position in enumerate(positions):
        model_files.add(entries[position].id, {n: a[index] for n, a in predicted.items()})


WRITES_AHEAD = 2  # batches handed to the writer threads and not yet written (host memory)


def predict_to_files(loader, entries, jobs, batch_size, workers, on_bad_image):
    """Stream every `ModelJob`'s predictions of every image into its files as they come (flat
    memory), with each job's `prediction_warnings` (also logged). Each model's files have a
    writer thread, which writes batch k while the main thread launches batch k+1 (the files'
    writes and checksums release the GIL), so the GPU does not wait for the disk."""
    batches = iter_shard_predictions(loader, entries, jobs, batch_size, workers, on_bad_image)
    with contextlib.ExitStack() as stack:
        files = [ModelFiles(stack, job, entries) for job in jobs]
        writers = [
            stack.enter_context(ThreadPoolExecutor(1, thread_name_prefix=f"infer-writer-{i}"))
            for i in range(len(jobs))
        ]  # exited before the files: every queued write ends before a file closes
        queued = collections.deque()
        for positions, predicted, _ in batches:
            queued.append([
                writer.submit(write_batch, model_files, entries, positions, outputs)
                for writer, model_files, outputs in zip(writers, files, predicted, strict=True)
            ])  # fmt: skip
            while len(queued) > WRITES_AHEAD:
                for write in queued.popleft():
                    write.result()
        for write in (write for batch in queued for write in batch):
            write.result()
        for model_files in files:
            model_files.add_warnings(len(entries))
    for job, model_files in zip(jobs, files, strict=True):
        for warning in model_files.warnings:
            log.warning("%s", warning)
        if job.ahead is not None:  # its label file is in place now
            job.ahead.finish(model_files.warnings, job.labels_path)


def predict_shard_to_file(
    loader, entries, predictor, batch_size, workers, on_bad_image, labels_path, outputs=None
):
    """`predict_to_files` for one predictor: its label maps into `labels_path` (None: no
    label file), the wanted `outputs` into theirs."""
    job = ModelJob(predictor, labels_path, outputs)
    predict_to_files(loader, entries, [job], batch_size, workers, on_bad_image)


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


@dataclass(frozen=True)
class ModelRun:
    """What an infer job runs of one model: its `settings.ModelSettings` and
    `settings.TTASettings` (None: no TTA), its label file (None: none) and the outputs derived
    from its class probabilities (`probabilities.ProbabilityOutputs`; None: none)."""

    model: object
    tta: object = None
    labels_path: object = None
    outputs: object = None


def checked_predictor(run, device, sizes, transform):
    """The TTA-wrapped predictor of a `ModelRun`, refused when it lacks the probabilities its
    outputs need, and run once on each of the shard's image `sizes`."""
    predictor = with_tta(load_predictor(run.model, device), run.tta)
    if run.outputs is not None and not has_probabilities(predictor):
        raise SegsubmitError(
            f"model.backend {run.model.backend}: its predictor gives no class probabilities, "
            "which ensembles, resize.interpolation: probability, pseudo_labels.threshold and "
            "the report's probability-space row need; a backend without them declares "
            "`probabilities = False` (segsubmit.plugins.Backend)"
        )
    probe_predictor(predictor, sizes, transform)
    if run.tta is not None and run.tta.enabled:
        log.info("infer: test-time augmentation, %d views per image (%s)", run.tta.views, run.tta)
    return predictor


def start_resize_ahead(plan, runs, device, count, stack):
    """The `ahead.ResizeAhead` of a single run's label maps when `plan` (an `ahead.AheadPlan`)
    wants one on `device`, entered on `stack`; else None."""
    if plan is None or len(runs) != 1 or not runs[0].labels_path or not plan.wanted_on(device):
        return None
    log.info("infer: resize ahead: the maps are resized and their rows encoded beside inference")
    return stack.enter_context(ResizeAhead(plan, count))


def infer_models_stage(shard_path, runs, infer, ahead_plan=None):
    """Stage entry: predict every image of a shard with each `ModelRun` of `runs` (`infer`:
    `settings.InferSettings`), each image decoded once for all of them, and write each run's
    files; with `ahead_plan` (an `ahead.AheadPlan`) a single run's maps are also resized
    ahead (`ahead.ResizeAhead`, forked here before CUDA starts).

    With a fixed batch size the DataLoader workers are started first: they fork from a small
    process and decode the first batches while the models are built and the GPU initialised.
    Each model is then run once on each image size of the shard, so that an output it cannot
    give for one of them is refused before any image is predicted. Every model runs on the
    device of the first one's `model.device`."""
    with contextlib.ExitStack() as stack:
        started = time.perf_counter()
        shard = Manifest.load(shard_path)
        claim_gpu_before_cuda(runs[0].model.device)  # held until the process ends
        device = resolve_device(runs[0].model.device)
        ahead = start_resize_ahead(ahead_plan, runs, device, len(shard.images), stack)
        predict_shard(shard, runs, infer, device, ahead, started)
    log_peak_memory()


def predict_shard(shard, runs, infer, device, ahead, started):
    """`infer_models_stage`'s work once the device is known and the resize ahead started."""
    entries, data_root = shard.images, shard.data_root
    limit_host_threads(device)
    transforms = [host_transform(run.model, device) for run in runs]
    loader_transform, views = shared_views(transforms)
    batch_size, max_pixels = infer.batch_size, infer.max_image_pixels
    workers = resolve_workers(infer.workers, device)
    loader = None
    if batch_size != "auto":
        loader = iter(
            shard_loader(entries, data_root, loader_transform, device, batch_size, workers,
                         max_pixels)
        )  # fmt: skip  # iter() forks the workers now
    predictors = [
        checked_predictor(run, device, shard.sizes(), transform)
        for run, transform in zip(runs, transforms, strict=True)
    ]
    log.info(
        "infer: %d images on %s with %s; models ready %.2f s after the stage started",
        len(entries),
        device,
        ", ".join(run.model.backend for run in runs),
        time.perf_counter() - started,
    )
    if loader is None:
        batch_size = min(
            largest_batch_size(predictor, transform, entries[0]) if entries else 1
            for predictor, transform in zip(predictors, transforms, strict=True)
        )
        loader = shard_loader(
            entries, data_root, loader_transform, device, batch_size, workers, max_pixels
        )
    jobs = [
        ModelJob(predictor, run.labels_path, run.outputs, view, ahead)
        for predictor, run, view in zip(predictors, runs, views, strict=True)
    ]
    predict_to_files(loader, entries, jobs, batch_size, workers, infer.on_bad_image)


def infer_stage(shard_path, labels_path, model, infer, tta=None, outputs=None, ahead=None):
    """Stage entry: `infer_models_stage` of one model (`model`: `settings.ModelSettings`,
    `tta`: `settings.TTASettings`): its argmax label maps (unless `labels_path` is None), the
    outputs derived from class probabilities that `outputs` (a
    `probabilities.ProbabilityOutputs`) asks for, and its resize job's work ahead when `ahead`
    (an `ahead.AheadPlan`) asks for it."""
    run = ModelRun(model, tta, labels_path, outputs)
    infer_models_stage(shard_path, [run], infer, ahead)
