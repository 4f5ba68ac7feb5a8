"""Detectron2 backend vs the seed's per-image DefaultPredictor loop, same CPU, same images.

Prints pixel agreement and the time ratio. Needs detectron2 (see docs/detectron2.md):
    PYTHONPATH=$PWD/.deps/detectron2 python bench/detectron2_cpu.py --images 12
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import cv2
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from conftest import CLASSES, make_dataset  # noqa: E402
from test_detectron2 import write_detectron2_model  # noqa: E402

from segsubmit.backends import PredictorSettings, load_predictor  # noqa: E402
from segsubmit.infer import predict_shard  # noqa: E402
from segsubmit.manifest import build_manifest  # noqa: E402


def default_predictor_loop(config_file, weights, paths):
    """The seed's loop: DefaultPredictor on each cv2.imread image, argmax per image."""
    from detectron2.config import get_cfg
    from detectron2.engine import DefaultPredictor

    cfg = get_cfg()
    cfg.merge_from_file(str(config_file))
    cfg.MODEL.WEIGHTS = str(weights)
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
    entries = build_manifest(root / "val.json", root, CLASSES, 1)
    paths = [root / e["file_name"] for e in entries]

    started = time.perf_counter()
    reference = default_predictor_loop(config_file, weights, paths)
    loop_seconds = time.perf_counter() - started

    print(
        "| images | batch size | pixels equal / compared | DefaultPredictor loop | backend "
        "(incl. model load) | loop / backend |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for batch_size in arguments.batch_sizes:
        started = time.perf_counter()
        predictor = load_predictor(
            "detectron2",
            PredictorSettings(
                weights=str(weights), config_file=str(config_file), num_classes=11, device="cpu"
            ),
        )
        batched = predict_shard(entries, root, predictor, batch_size, workers=2)
        backend_seconds = time.perf_counter() - started
        compared = sum(r.size for r in reference)
        equal = sum(int((r == b).sum()) for r, b in zip(reference, batched, strict=True))
        print(
            f"| {len(entries)} × 512² | {batch_size} | {equal} / {compared} | "
            f"{loop_seconds:.1f} s | {backend_seconds:.1f} s | "
            f"{loop_seconds / backend_seconds:.2f} |"
        )


if __name__ == "__main__":
    main()
