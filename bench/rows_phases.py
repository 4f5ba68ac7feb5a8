"""Where the infer stage's time goes besides the model: each phase of its input and output side
timed alone, in the main process, over all images (decode, host transform, stack, pin, copy to
the device, device preprocessing, the floor, argmax, copy back, label file write), and JPEG
decoding on the GPU (nvjpeg) as a possible replacement for the workers' CPU decode."""

import contextlib
import functools
import itertools
import statistics

import torch
from timing import seconds, timed

from segsubmit.backends.base import Predictor
from segsubmit.images import decode_rgb
from segsubmit.infer import (
    finish_host_copy,
    limit_host_threads,
    predict_shard_to_file,
    shard_loader,
    to_host_async,
)
from segsubmit.labels import label_shard_writer


@contextlib.contextmanager
def stage_threads(device):
    """The main process's intra-op threads as `infer.infer_stage` sets them, restored after (so
    that the floors and the libraries' loops keep torch's default)."""
    threads = torch.get_num_threads()
    limit_host_threads(device)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def batched(items, size):
    return [items[start : start + size] for start in range(0, len(items), size)]


def phase_functions(predictor, transform, paths, batch_size, labels_path):
    """{phase: function running it over all images}, each on inputs the phase before made
    (made once here, outside the timing)."""
    device = predictor.device
    size = tuple(decode_rgb(paths[0]).shape[1:])
    images = [decode_rgb(path) for path in paths]
    ready = [transform(image) for image in images] if transform else images
    stacked = [torch.stack(batch) for batch in batched(ready, batch_size)]
    cuda = device.type == "cuda"
    pinned = [batch.pin_memory() for batch in stacked] if cuda else stacked
    on_device = [batch.to(device) for batch in pinned]
    prepared = [predictor.model_input(batch) for batch in on_device]
    labels = [predictor.predict_prepared(batch, size) for batch in prepared]
    hosts = [finish_host_copy(to_host_async({"labels": batch}))["labels"] for batch in labels]
    maps = [label_map for batch in hosts for label_map in batch]
    phases = {
        "decode (torchvision CPU, 1 process)": lambda: [decode_rgb(path) for path in paths],
        "stack (collate)": lambda: [torch.stack(batch) for batch in batched(ready, batch_size)],
        "device preprocessing (model_input)": lambda: [predictor.model_input(b) for b in on_device],
        "model floor (forward + argmax)": lambda: [
            predictor.predict_prepared(batch, size) for batch in prepared
        ],
        "labels to host (pinned, async)": lambda: [
            finish_host_copy(to_host_async({"labels": batch})) for batch in labels
        ],
        "label file write": lambda: write_maps(labels_path, maps),
    }
    if transform:
        phases["host transform"] = lambda: [transform(image) for image in images]
    if cuda:
        phases["pin"] = lambda: [batch.pin_memory() for batch in stacked]
        phases["copy to device"] = lambda: [batch.to(device, non_blocking=True) for batch in pinned]
    if type(predictor).predict_prepared is Predictor.predict_prepared:  # logits, then argmax
        scores = predictor.scores(prepared[0], size)
        phases["argmax alone"] = lambda: [predictor.argmax_labels(scores) for _ in prepared]
    return phases


def write_maps(path, maps):
    with label_shard_writer(path, sum(m.size for m in maps)) as add:
        for index, label_map in enumerate(maps):
            add(index, label_map)


def phase_rows(table, name, predictor, transform, paths, batch_size, labels_path, repeats):
    """One row per phase, as a ratio to the backend's floor row `{name}: model floor`."""
    floor = f"{name}: model floor"
    phases = phase_functions(predictor, transform, paths, batch_size, labels_path)
    for phase, function in phases.items():
        function()  # warm-up
        value = seconds(function, repeats)
        table.row(f"{name}: phase {phase}", value, floor,
                  f"{1e3 * value / len(paths):.3f} ms/image")  # fmt: skip


def gpu_decode_rows(table, name, paths, batch_size, repeats):
    """JPEG decode on the GPU (torchvision.io.decode_jpeg(device="cuda"), batches) and its
    pixel agreement with the CPU decode the workers run."""
    from torchvision.io import ImageReadMode, decode_jpeg, read_file

    data = [read_file(str(path)) for path in paths]
    batches = batched(data, batch_size)

    def decode_all():
        return [decode_jpeg(batch, mode=ImageReadMode.RGB, device="cuda") for batch in batches]

    decoded = [image for batch in decode_all() for image in batch]
    equal = sum(int((a.cpu() == decode_rgb(p)).sum()) for a, p in zip(decoded, paths, strict=True))
    total = sum(image.numel() for image in decoded)
    largest = max(int((a.cpu().int() - decode_rgb(p).int()).abs().max())
                  for a, p in zip(decoded, paths, strict=True))  # fmt: skip
    table.row(f"{name}: phase decode on the GPU (nvjpeg, batches of {batch_size})",
              seconds(decode_all, repeats), f"{name}: model floor",
              f"values equal to the CPU decode: {equal / total:.5f}, largest difference "
              f"{largest}")  # fmt: skip


def from_first_batch(make_loader, run_batches, repeats):
    """(median seconds to a fresh loader's first batch, median seconds of `run_batches(batches)`
    from then on): an infer job starts its workers before it loads its models, so its loop
    begins with the first batches decoded; a bench has its models loaded already, so the wait for
    the first batch is timed apart. The first of `repeats + 1` calls warms up."""
    firsts, loops = [], []
    for _ in range(repeats + 1):
        iterator = iter(make_loader())
        wait, first = timed(functools.partial(next, iterator))
        loop, _ = timed(functools.partial(run_batches, itertools.chain([first], iterator)))
        firsts.append(wait)
        loops.append(loop)
    return statistics.median(firsts[1:]), statistics.median(loops[1:])


def stage_from_first_batch(loaded_predictor, entries, root, batch_size, workers, labels_path,
                           repeats):  # fmt: skip
    """`from_first_batch` of the infer stage's loop of one predictor, its maps to
    `labels_path`."""
    predictor, transform = loaded_predictor
    return from_first_batch(
        lambda: shard_loader(entries, root, transform, predictor.device, batch_size, workers),
        lambda batches: predict_shard_to_file(
            batches, entries, predictor, batch_size, workers, "error", labels_path
        ),
        repeats,
    )
