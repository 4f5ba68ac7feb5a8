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
from rows_stages import SIZE, stage_calls, time_stages  # bench/ is on sys.path as scripts run
from timing import Table

from segsubmit.labels import write_label_shard
from segsubmit.testing import NUM_CLASSES


def blob_maps(count, size=512, classes=NUM_CLASSES, seed=0):
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
    truths = [cv2.resize(m, SIZE[::-1], interpolation=cv2.INTER_NEAREST) for m in reversed(maps)]
    write_label_shard(work / "truth.npz", ids, truths)
    entries = [{"id": i, "file_name": f"batch_01_vt/{i:04d}.jpg", "height": 512, "width": 512}
               for i in ids]  # fmt: skip
    (work / "manifest.json").write_text(json.dumps({"images": entries}))
    table = Table()
    print(f"{len(maps)} maps")
    time_stages(table, stage_calls(work, work / "labels.npz", work / "truth.npz"),
                arguments.repeats)  # fmt: skip


if __name__ == "__main__":
    main()
