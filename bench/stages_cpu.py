"""The CPU stages after inference, on synthetic label maps: no model, no GPU, no detectron2.

Times the resize (both backends), submission write, re-read check and score stages on `--images`
512² maps (random 16×16 class blobs, nearest-upsampled), medians of `--repeats`.

    python bench/stages_cpu.py --images 819
"""

import argparse
import json
import tempfile
from pathlib import Path

import cv2
import numpy as np
from host_probe import seconds  # this folder is on sys.path when the script runs

from segsubmit.labels import write_label_shard
from segsubmit.stages import resize_stage, score_stage, submission_stage, validate_stage


def blob_maps(count, size=512, classes=11, seed=0):
    """Label maps of random 16×16 class blobs, nearest-upsampled to `size`²."""
    rng = np.random.default_rng(seed)
    return [
        cv2.resize(rng.integers(0, classes, (16, 16), dtype=np.uint8), (size, size),
                   interpolation=cv2.INTER_NEAREST)
        for _ in range(count)
    ]  # fmt: skip


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=819)
    parser.add_argument("--repeats", type=int, default=5)
    arguments = parser.parse_args()
    work = Path(tempfile.mkdtemp())
    maps = blob_maps(arguments.images)
    ids = list(range(len(maps)))
    write_label_shard(work / "labels.npz", ids, maps)
    write_label_shard(work / "truth.npz", ids, [m[::2, ::2] for m in reversed(maps)])
    entries = [{"id": i, "file_name": f"batch_01_vt/{i:04d}.jpg", "height": 512, "width": 512}
               for i in ids]  # fmt: skip
    (work / "manifest.json").write_text(json.dumps({"images": entries}))
    classes = [str(c) for c in range(11)]
    stages = {
        "resize stage (albumentations)": lambda: resize_stage(
            work / "labels.npz", work / "resized.npz", "albumentations", [256, 256], "nearest",
            False),
        "resize stage (kornia)": lambda: resize_stage(
            work / "labels.npz", work / "kornia.npz", "kornia", [256, 256], "nearest", False),
        "submission stage: write": lambda: submission_stage(
            work / "manifest.json", [work / "resized.npz"], work / "submission.csv", 11,
            [256, 256]),
        "submission stage: re-read check": lambda: validate_stage(
            work / "submission.csv", work / "manifest.json", work / "valid.json", 11, [256, 256]),
        "score stage": lambda: score_stage(
            work / "truth.npz", [work / "resized.npz"], work / "score.json", work / "score.txt",
            classes, "256x256"),
    }  # fmt: skip
    print(f"| what ({len(maps)} maps) | seconds |\n| --- | --- |")
    for name, stage in stages.items():
        stage()  # warm-up: imports, page cache
        print(f"| {name} | {seconds(stage, arguments.repeats):.3f} |", flush=True)


if __name__ == "__main__":
    main()
