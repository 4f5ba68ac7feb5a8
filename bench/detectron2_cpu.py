"""Detectron2 backend vs the seed's per-image DefaultPredictor loop, same CPU, same images.

Prints pixel agreement and the time ratio. Needs detectron2 (see docs/detectron2.md):
    PYTHONPATH=$PWD/.deps/detectron2 python bench/detectron2_cpu.py --images 12
"""

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import torch
from rows_infer import loaded, pixel_agreement
from seed_script import seed_config
from timing import timed

from segsubmit.manifest import build_manifest
from segsubmit.testing import CLASSES, make_dataset, predict_shard, write_detectron2_model


def default_predictor_loop(config_file, weights, paths):
    """The seed's loop on the CPU: DefaultPredictor on each cv2.imread image, argmax."""
    from detectron2.engine import DefaultPredictor

    cfg = seed_config(config_file, weights)
    cfg.MODEL.DEVICE = "cpu"
    predictor = DefaultPredictor(cfg)
    return [predictor(cv2.imread(str(p)))["sem_seg"].argmax(0).to(torch.uint8).numpy()
            for p in paths]  # fmt: skip


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=12)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4])
    arguments = parser.parse_args()
    folder = Path(tempfile.mkdtemp())
    config_file, weights = write_detectron2_model(folder)
    root = make_dataset(folder / "data", {"val": arguments.images}, size=512)
    entries = build_manifest(root / "val.json", root, CLASSES, 1).images
    paths = [root / e.file_name for e in entries]
    loop_seconds, reference = timed(lambda: default_predictor_loop(config_file, weights, paths))
    print("| images | batch size | pixels equal | DefaultPredictor loop | backend (incl. model "
          "load) | loop / backend |\n| --- | --- | --- | --- | --- | --- |")  # fmt: skip
    for batch_size in arguments.batch_sizes:
        started = time.perf_counter()
        predictor, transform = loaded("detectron2", weights, config_file=str(config_file),
                                      device="cpu")  # fmt: skip
        batched = predict_shard(entries, root, predictor, batch_size, 2, transform=transform)
        backend_seconds = time.perf_counter() - started
        print(f"| {len(entries)} × 512² | {batch_size} | {pixel_agreement(reference, batched):.5f}"
              f" | {loop_seconds:.1f} s | {backend_seconds:.1f} s | "
              f"{loop_seconds / backend_seconds:.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
