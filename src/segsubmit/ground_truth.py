"""Ground truth, once per split and size, in manifest order: COCO annotations rasterized, or
label PNGs read from a folder (`data.masks`: VOC, ADE20K, Cityscapes layouts)."""

import logging
from pathlib import Path, PurePosixPath

import numpy as np

from .coco import category_class_index, load_coco, validate_coco
from .errors import SegsubmitError
from .labels import label_shard_writer
from .manifest import Manifest, check_json_unchanged
from .resize import MAPS_AT_ONCE, resize_label_maps

log = logging.getLogger(__name__)


def rasterize_ground_truth(coco_api, image_id, class_of_category):
    """(H, W) uint8 class map: annotations drawn largest area first, so smaller objects win
    (the competition baseline's order); unannotated pixels are background (0). Annotations of
    the background class (a category `data.category_map` maps to it) are dropped, not drawn:
    the objects beneath them keep their class."""
    info = coco_api.imgs[image_id]
    mask = np.zeros((info["height"], info["width"]), dtype=np.uint8)
    annotations = [
        annotation
        for annotation in coco_api.loadAnns(coco_api.getAnnIds(imgIds=image_id, iscrowd=None))
        if class_of_category[annotation["category_id"]] != 0
    ]
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


def mask_path(folder, file_name, image_suffix=None, suffix=".png"):
    """The label PNG of an image: under `folder`, at its file_name's path with its ending
    (`image_suffix`, default its extension) replaced by `suffix`."""
    if image_suffix:
        if not file_name.endswith(image_suffix):
            raise SegsubmitError(
                f"data.masks.image_suffix: file_name {file_name!r} does not end with "
                f"{image_suffix!r}; fix the suffix (or null: replace the extension)"
            )
        stem = file_name[: -len(image_suffix)]
    else:
        stem = str(PurePosixPath(file_name).with_suffix(""))
    return Path(folder) / f"{stem}{suffix}"


def mask_lookup(label_ids, class_names, ignore_index):
    """int16 table PNG value -> class index: `label_ids` ({class name: value}; {} = the value
    is the index); values no class has -> `ignore_index`, or -1 (refused) when it is None."""
    lookup = np.full(256, -1 if ignore_index is None else ignore_index, dtype=np.int16)
    if label_ids:
        for name, value in label_ids.items():
            lookup[value] = class_names.index(name)
    else:
        lookup[: len(class_names)] = np.arange(len(class_names))
    if ignore_index is not None:
        lookup[ignore_index] = ignore_index
    return lookup


def read_mask(path, entry, lookup):
    """(H, W) uint8 class map of a label PNG (8-bit greyscale or palette, the image's size);
    one line naming the file when it cannot be one."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            if image.mode not in ("L", "P"):
                raise SegsubmitError(
                    f"{path}: a {image.mode} image; label PNGs hold 8-bit values (mode L or P)"
                )
            if image.size != (entry.width, entry.height):
                raise SegsubmitError(
                    f"{path}: {image.size[0]}x{image.size[1]}, but {entry.file_name} is "
                    f"{entry.width}x{entry.height}; a label PNG has its image's size"
                )
            values = np.asarray(image)
    except FileNotFoundError as err:
        raise SegsubmitError(
            f"{path}: no label PNG for {entry.file_name}; fix data.masks or add the file"
        ) from err
    except (UnidentifiedImageError, OSError) as err:
        raise SegsubmitError(f"{path}: cannot read as a label PNG ({err})") from err
    classes = lookup[values]
    if (classes < 0).any():
        value = int(values[classes < 0][0])
        raise SegsubmitError(
            f"{path}: pixel value {value} is no class's (data.masks.label_ids) and "
            "score.ignore_index is null; map it to a class or set score.ignore_index"
        )
    return classes.astype(np.uint8)


def ground_truth_stage(
    json_path,
    manifest_path,
    ground_truth_path,
    class_names,
    size,
    category_map=None,
    masks=None,
    ignore_index=None,
):
    """Stage entry: the split's ground truth in manifest order — its annotations rasterized, or
    with `masks` ({folder, image_suffix, suffix, label_ids}; folder resolved) its label PNGs —
    resized to `size` (h, w) with the submission's NEAREST rule, or kept at the images' size
    when `size` is None. Ignored pixels keep `ignore_index`."""
    manifest = Manifest.load(manifest_path)
    check_json_unchanged(manifest, json_path)
    entries = manifest.images
    if masks and masks.get("folder"):
        lookup = mask_lookup(masks.get("label_ids") or {}, list(class_names), ignore_index)
        suffixes = masks.get("image_suffix"), masks.get("suffix", ".png")

        def truth_of(entry):
            return read_mask(mask_path(masks["folder"], entry.file_name, *suffixes), entry, lookup)

        source = masks["folder"]
    else:
        coco_api, class_of_category = load_ground_truth(json_path, class_names, category_map)

        def truth_of(entry):
            return rasterize_ground_truth(coco_api, entry.id, class_of_category)

        source = json_path
    shapes = [size or entry.size for entry in entries]
    with label_shard_writer(ground_truth_path, sum(h * w for h, w in shapes)) as add:
        for first in range(0, len(entries), MAPS_AT_ONCE):
            span = entries[first : first + MAPS_AT_ONCE]
            truths = [truth_of(entry) for entry in span]
            if size is not None:
                truths = resize_label_maps(truths, tuple(size), "albumentations")
            for entry, truth in zip(span, truths, strict=True):
                add(entry.id, truth)
    log.info("ground truth: %d maps from %s", len(entries), source)
