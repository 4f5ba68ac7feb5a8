"""Pseudo-labels: a split's predictions exported as training data, at each image's own size
(the infer stage's maps, before resize): label PNGs in MMSegmentation's `ann_dir` layout and a
COCO json whose annotations are RLE masks (one per image and predicted class, background
excluded). With `pseudo_labels.threshold` the maps are the `infer_confident` stage's: pixels
whose top class probability is below it hold `ignore_index` (255 in the PNGs, as MMSeg and
Detectron2 expect) and are in no annotation of the json - where COCO, which has no ignore label,
cannot tell them from background: train on the PNGs to keep them ignored. From one model (an
ensemble's combined probabilities are not an input of this stage)."""

import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np

from .atomic import temporary_path
from .formats.png_zip import encode_png
from .labels import maps_in_order
from .manifest import Manifest

log = logging.getLogger(__name__)


def pseudo_label_annotations(entry, label_map, num_classes, first_id):
    """COCO annotations of one map: an RLE mask with area and bbox per class 1..n-1 present."""
    from pycocotools import mask as mask_utils

    present = [index for index in range(1, num_classes) if (label_map == index).any()]
    if not present:
        return []
    masks = np.asfortranarray(
        np.stack([label_map == index for index in present], axis=-1), dtype=np.uint8
    )
    rles = mask_utils.encode(masks)
    areas, boxes = mask_utils.area(rles), mask_utils.toBbox(rles)
    return [
        {
            "id": first_id + number,
            "image_id": entry.id,
            "category_id": index,
            "segmentation": {"size": rle["size"], "counts": rle["counts"].decode("ascii")},
            "area": int(area),
            "bbox": [float(v) for v in box],
            "iscrowd": 0,
        }
        for number, (index, rle, area, box) in enumerate(
            zip(present, rles, areas, boxes, strict=True)
        )
    ]


def pseudo_labels_stage(
    manifest_path, label_paths, output_dir, class_names, threshold=0.0, ignore_index=255
):
    """Stage entry: `<output_dir>/ann_dir/<file_name stem>.png` (class index per pixel, the
    image's size; `ignore_index` where below `threshold`) and `<output_dir>/annotations.json`
    (the images, categories 1..n-1 and RLE annotations), written under a temporary folder
    renamed into place when complete."""
    manifest = Manifest.load(manifest_path)
    output_dir = Path(output_dir)
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = temporary_path(output_dir)
    shutil.rmtree(tmp_dir, ignore_errors=True)
    try:
        annotations, ignored, pixels = [], 0, 0
        maps = maps_in_order([entry.id for entry in manifest.images], label_paths)
        for entry, label_map in zip(manifest.images, maps, strict=True):
            ignored += int((label_map == ignore_index).sum()) if threshold > 0 else 0
            pixels += label_map.size
            png = tmp_dir / "ann_dir" / Path(entry.file_name).with_suffix(".png")
            png.parent.mkdir(parents=True, exist_ok=True)
            png.write_bytes(encode_png(label_map, "L"))
            annotations += pseudo_label_annotations(
                entry, label_map, len(class_names), len(annotations) + 1
            )
        dataset = {
            "images": [
                {"id": e.id, "file_name": e.file_name, "width": e.width, "height": e.height}
                for e in manifest.images
            ],
            "categories": [
                {"id": index, "name": name} for index, name in enumerate(class_names) if index
            ],
            "annotations": annotations,
        }
        (tmp_dir / "annotations.json").write_text(json.dumps(dataset), encoding="utf-8")
        shutil.rmtree(output_dir, ignore_errors=True)
        os.replace(tmp_dir, output_dir)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    how = (
        f"threshold {threshold}: {100 * ignored / max(pixels, 1):.2f} % of pixels {ignore_index}"
        if threshold > 0
        else "argmax, no threshold"
    )
    log.info(
        "pseudo labels: %d PNGs and %d annotations -> %s (%s)",
        len(manifest.images),
        len(annotations),
        output_dir,
        how,
    )
