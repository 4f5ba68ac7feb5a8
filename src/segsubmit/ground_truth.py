"""Ground truth from COCO polygons: rasterized once per split and size, in manifest order."""

import logging

import numpy as np

from .coco import category_class_index, load_coco, validate_coco
from .errors import SegsubmitError
from .labels import label_shard_writer
from .manifest import Manifest
from .resize import MAPS_AT_ONCE, resize_label_maps

log = logging.getLogger(__name__)


def rasterize_ground_truth(coco_api, image_id, class_of_category):
    """(H, W) uint8 class map: annotations drawn largest area first, so smaller objects win
    (the competition baseline's order); unannotated pixels are background (0)."""
    info = coco_api.imgs[image_id]
    mask = np.zeros((info["height"], info["width"]), dtype=np.uint8)
    annotations = coco_api.loadAnns(coco_api.getAnnIds(imgIds=image_id, iscrowd=None))
    for annotation in sorted(annotations, key=lambda a: a["area"], reverse=True):
        mask[coco_api.annToMask(annotation) == 1] = class_of_category[annotation["category_id"]]
    return mask


def with_area(annotation, height, width):
    """The annotation with its `area` (pixels of its mask, as pycocotools computes it) when the
    json left it out."""
    if "area" in annotation:
        return annotation
    from pycocotools import mask as mask_utils

    segmentation = annotation["segmentation"]
    if isinstance(segmentation, list):  # polygons
        rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    elif isinstance(segmentation["counts"], list):  # uncompressed RLE
        rle = mask_utils.frPyObjects(segmentation, height, width)
    else:  # compressed RLE
        rle = segmentation
    return {**annotation, "area": float(mask_utils.area(rle))}


def validated_dataset(json_path, class_names, category_map=None):
    """The json as `validate_coco` passed it (the manifest did the same, so this cannot fail
    after it), annotations numbered 1..N and each with an `area`; refused without annotations."""
    coco = load_coco(json_path)
    validate_coco(json_path, coco, class_names, category_map)
    if not coco.get("annotations"):
        raise SegsubmitError(
            f"{json_path}: no annotations to score against; remove the split from data.score"
        )
    images = {image["id"]: image for image in coco["images"]}
    annotations = [
        {**with_area(a, images[a["image_id"]]["height"], images[a["image_id"]]["width"]), "id": n}
        for n, a in enumerate(coco["annotations"], start=1)
    ]
    return {**coco, "annotations": annotations}


def load_ground_truth(json_path, class_names, category_map=None):
    """(pycocotools COCO, {category id: class index}) for a json with annotations."""
    from pycocotools.coco import COCO

    coco_api = COCO()
    coco_api.dataset = validated_dataset(json_path, class_names, category_map)
    coco_api.createIndex()
    return coco_api, category_class_index(json_path, coco_api.dataset, class_names, category_map)


def ground_truth_stage(
    json_path, manifest_path, ground_truth_path, class_names, size, category_map=None
):
    """Stage entry: the split's annotations rasterized in manifest order, resized to `size`
    (h, w) with the submission's NEAREST rule, or kept at the images' size when `size` is None."""
    entries = Manifest.load(manifest_path).images
    coco_api, class_of_category = load_ground_truth(json_path, class_names, category_map)
    shapes = [size or entry.size for entry in entries]
    with label_shard_writer(ground_truth_path, sum(h * w for h, w in shapes)) as add:
        for first in range(0, len(entries), MAPS_AT_ONCE):
            span = entries[first : first + MAPS_AT_ONCE]
            truths = [rasterize_ground_truth(coco_api, e.id, class_of_category) for e in span]
            if size is not None:
                truths = resize_label_maps(truths, tuple(size), "albumentations")
            for entry, truth in zip(span, truths, strict=True):
                add(entry.id, truth)
    log.info("ground truth: %d maps from %s", len(entries), json_path)
