"""Seed rows: the seed's two inference loops as it wrote them, timed with the model loaded,
against this workflow's infer stage (+ resize) at the same `INPUT.MIN_SIZE_TEST`; models are
built before the clock starts, DataLoader workers start inside it (as in each loop).

Seed A: `DefaultPredictor` per image, Albumentations `Resize` on the mask, `np.vstack` per image
(only change: the dummy image is HWC, as current Albumentations requires). Seed B: the seed
script's BatchPredictor loop (`seed_script.py`: bs 32, 4 workers, Kornia on the GPU batch,
`np.vstack` per batch)."""

from functools import partial

import albumentations as A
import cv2
import numpy as np
import seed_script
from data import detectron2_model
from rows_infer import loaded, pixel_agreement
from rows_stages import SIZE
from timing import timed

from segsubmit.resize import resize_label_maps
from segsubmit.testing import predict_shard


def default_predictor(config_file, weights, min_size):
    """The seed A predictor: detectron2's `DefaultPredictor` on the seed's config."""
    from detectron2.engine import DefaultPredictor

    return DefaultPredictor(seed_script.seed_config(config_file, weights, min_size))


def seed_a(predictor, paths, size):
    """The seed's per-image loop -> (N, H*W) int64."""
    transform = A.Compose([A.Resize(*size)])
    predictions = np.empty((0, size[0] * size[1]), dtype=np.int64)
    for path in paths:
        image = cv2.imread(str(path))
        outputs = predictor(image)
        mask = outputs["sem_seg"].argmax(0).detach().cpu().numpy()
        transformed = transform(image=np.zeros(image.shape, np.uint8), mask=mask)
        masks = np.array([transformed["mask"]]).reshape([1, size[0] * size[1]]).astype(int)
        predictions = np.vstack((predictions, masks))
    return predictions


def ours(model, entries, root, arguments):
    """(seconds, maps at SIZE) of the infer stage in-process (model loaded) + the resize."""
    predictor, transform = loaded("detectron2", model[1], config_file=str(model[0]))
    run = lambda: predict_shard(entries, root, predictor, arguments.batch_size,  # noqa: E731
                                arguments.workers, transform=transform)  # fmt: skip
    run()  # warm-up
    seconds, maps = timed(run)
    return seconds, resize_label_maps(maps, SIZE, "albumentations")


def seed_rows(table, arguments, work, entries, root):
    """Per `--min-sizes` entry: seeds B and A on the first `--seed-images` images, per image
    against our infer stage's time per image; pixel agreement with ours."""
    entries = entries[: arguments.seed_images]
    paths = [root / entry.file_name for entry in entries]
    for min_size in arguments.min_sizes:
        model = detectron2_model(work / "models", min_size)
        our_seconds, our_maps = ours(model, entries, root, arguments)
        base = f"infer stage fp32 + resize, MIN_SIZE_TEST {min_size}, {len(paths)} images"
        table.row(base, our_seconds, note="model loaded; workers started in the call")
        seeds = {
            "seed B loop (BatchPredictor bs 32, 4 workers, Kornia on the batch, vstack)": (
                seed_script.seed_b,
                seed_script.BatchPredictor(seed_script.seed_config(*model, min_size)),
            ),
            "seed A loop (DefaultPredictor per image + Albumentations + vstack)": (
                seed_a,
                default_predictor(*model, min_size),
            ),
        }
        for name, (loop, predictor) in seeds.items():
            seconds, predictions = timed(partial(loop, predictor, paths, SIZE))
            agreement = pixel_agreement([p.reshape(SIZE) for p in predictions], our_maps)
            table.row(f"{name}, MIN_SIZE_TEST {min_size}", seconds, base,
                      f"pixels equal to ours: {agreement:.5f}")  # fmt: skip
