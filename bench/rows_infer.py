"""Model rows: the forward pass alone on preloaded model-ready batches (the floor, per
precision), the infer stage's input pipeline alone, and the infer stage in-process per precision
(pixel agreement with fp32) and per worker count."""

import torch
from timing import seconds

from segsubmit.backends.base import host_transform, load_predictor
from segsubmit.images import decode_rgb
from segsubmit.infer import predict_shard_to_file, shard_loader
from segsubmit.labels import read_label_shard
from segsubmit.plugins import backend_named
from segsubmit.testing import model_settings

FLOOR = "model floor fp32 (forward only)"
PRECISIONS = {
    "fp32": {},
    "bf16": {"precision": "bf16"},
    "bf16 + channels_last": {"precision": "bf16", "channels_last": True},
    "fp16": {"precision": "fp16"},
}


def loaded(backend, weights, **settings):
    """(predictor, host transform) of `backend` with the schema's defaults and `settings` (the
    backend's own options among them go into its section)."""
    names = backend_named(backend).options
    options = {key: value for key, value in settings.items() if key in names}
    common = {key: value for key, value in settings.items() if key not in names}
    settings = model_settings(backend, weights, options=options, **common)
    predictor = load_predictor(settings)
    return predictor, host_transform(settings, predictor.device)


def model_floor(predictor, transform, paths, batch_size):
    """A function running the model alone over all images, on model-ready device batches
    (decoded, transformed and prepared before timing); called once as a warm-up."""
    size = tuple(decode_rgb(paths[0]).shape[1:])
    batches = []
    for start in range(0, len(paths), batch_size):
        images = [decode_rgb(path) for path in paths[start : start + batch_size]]
        if transform is not None:
            images = [transform(image) for image in images]
        batches.append(predictor.model_input(torch.stack(images).to(predictor.device)))

    def forward_all():
        for batch in batches:
            predictor.predict_prepared(batch, size)

    forward_all()
    return forward_all


def input_pipeline(predictor, transform, entries, root, batch_size, workers):
    """A function running the infer stage's input side alone: decode in workers, pin, copy to
    the device, `model_input` there."""

    def load_all():
        loader = shard_loader(entries, root, transform, predictor.device, batch_size, workers)
        for _, batch, _ in loader:
            predictor.model_input(batch.to(predictor.device, non_blocking=True))

    return load_all


def infer_to_file(loaded_predictor, entries, root, batch_size, workers, labels_path):
    """A function running the infer stage in-process (model loaded, workers started per call)
    into `labels_path`; called once as a warm-up."""
    predictor, transform = loaded_predictor

    def run():
        loader = shard_loader(entries, root, transform, predictor.device, batch_size, workers)
        predict_shard_to_file(loader, entries, predictor, batch_size, workers, "error",
                              labels_path)  # fmt: skip

    run()
    return run


def pixel_agreement(maps_a, maps_b):
    """Fraction of equal pixels over two equally long lists of label maps."""
    equal = sum(int((a == b).sum()) for a, b in zip(maps_a, maps_b, strict=True))
    return equal / sum(a.size for a in maps_a)


def shard_file_agreement(path_a, path_b):
    return pixel_agreement(read_label_shard(path_a)[1], read_label_shard(path_b)[1])


def detectron2_rows(table, arguments, work, entries, root, model):
    """Floors, input pipeline and infer stage per precision (`model`: config, weights); the
    fp32 labels go to `work`/labels-fp32.npz."""
    config_file, weights = model
    paths = [root / entry.file_name for entry in entries]
    batch, workers, repeats = arguments.batch_size, arguments.workers, arguments.repeats
    predictors = {name: loaded("detectron2", weights, config_file=str(config_file),
                               **PRECISIONS[name]) for name in arguments.precisions}  # fmt: skip
    for name, predictor in predictors.items():
        if name == "fp32" or name.startswith("bf16"):
            floor = model_floor(*predictor, paths, batch)
            table.row(f"model floor {name} (forward only)", seconds(floor, repeats), FLOOR)
    pipeline = input_pipeline(*predictors["fp32"], entries, root, batch, workers)
    pipeline()
    table.row("input pipeline alone (decode, pin, copy, resize)", seconds(pipeline, repeats),
              FLOOR, f"{workers} workers")  # fmt: skip
    for name, predictor in predictors.items():
        labels_path = work / f"labels-{name.replace(' ', '')}.npz"
        run = infer_to_file(predictor, entries, root, batch, workers, labels_path)
        agreement = shard_file_agreement(work / "labels-fp32.npz", labels_path)
        table.row(f"infer stage {name}", seconds(run, repeats), FLOOR,
                  f"pixels equal to fp32: {agreement:.5f}; {workers} workers")  # fmt: skip
    for count in arguments.worker_sweep:
        run = infer_to_file(predictors["fp32"], entries, root, batch, count,
                            work / f"labels-workers{count}.npz")  # fmt: skip
        table.row(f"infer stage fp32, {count} workers", seconds(run, repeats), FLOOR)
