"""The embedded demo: a small synthetic dataset in the competition's exact COCO format.

Objects are random polygons whose class shows only through a mix of colour and texture
(colours of some classes overlap; textures tell them apart), drawn over a textured background,
overlapping and touching. Pixels are drawn from the same pycocotools rasterization the scorer
uses, largest object first, so the ground truth matches the image exactly.
"""

import json
import logging
from pathlib import Path

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from .atomic import atomic_path

log = logging.getLogger(__name__)

# (base BGR colour, texture kind, texture period in px) per object class 1..10
CLASS_APPEARANCE = (
    ((40, 40, 200), "stripes", 6),
    ((200, 200, 200), "dots", 9),
    ((40, 40, 200), "checker", 14),
    ((160, 160, 160), "stripes", 16),
    ((90, 200, 60), "flat", 0),
    ((220, 120, 40), "checker", 8),
    ((200, 200, 200), "stripes", 7),
    ((90, 200, 60), "dots", 6),
    ((20, 160, 230), "flat", 0),
    ((140, 40, 140), "stripes", 10),
)


def random_polygon(rng, size):
    """A star-shaped polygon (flat [x0, y0, x1, y1, ...]) of random radius and position."""
    centre = rng.uniform(0.1 * size, 0.9 * size, 2)
    radius = rng.uniform(0.06, 0.22) * size
    angles = np.sort(rng.uniform(0, 2 * np.pi, rng.integers(5, 11)))
    radii = radius * rng.uniform(0.55, 1.0, angles.size)
    points = centre + np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)
    return np.clip(points, 0, size - 1).round(1).ravel().tolist()


def texture(kind, period, size, rng):
    """(size, size) float pattern in [-1, 1] for a texture kind."""
    if kind == "flat":
        return np.zeros((size, size), np.float32)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    angle = rng.uniform(0, np.pi)
    if kind == "stripes":
        phase = x * np.cos(angle) + y * np.sin(angle)
        return np.sign(np.sin(2 * np.pi * phase / period)).astype(np.float32)
    if kind == "checker":
        return (((x // period + y // period) % 2) * 2 - 1).astype(np.float32)
    dots = np.hypot(x % period - period / 2, y % period - period / 2) < period / 3.5
    return dots.astype(np.float32) * 2 - 1


def background(rng, size):
    """Smooth random colour field with noise: no class colour is safe to assume."""
    coarse = rng.uniform(40, 215, (4, 4, 3)).astype(np.float32)
    field = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
    return field + rng.normal(0, 12, (size, size, 3)).astype(np.float32)


def draw_image(rng, size, object_count):
    """(BGR uint8 image, annotations without ids) for one synthetic picture."""
    image = background(rng, size)
    objects = []
    for _ in range(object_count):
        polygon = random_polygon(rng, size)
        rle = mask_utils.merge(mask_utils.frPyObjects([polygon], size, size))
        objects.append((float(mask_utils.area(rle)), int(rng.integers(1, 11)), polygon, rle))
    objects.sort(key=lambda obj: obj[0], reverse=True)
    annotations = []
    for area, category_id, polygon, rle in objects:
        if area < 50:
            continue
        colour, kind, period = CLASS_APPEARANCE[category_id - 1]
        jitter = rng.normal(0, 18, 3)
        fill = np.asarray(colour, np.float32) + jitter
        pattern = texture(kind, period, size, rng)[..., None] * 45
        inside = mask_utils.decode(rle).astype(bool)
        image[inside] = (fill + pattern)[inside]
        x, y, w, h = mask_utils.toBbox(rle).tolist()
        annotations.append(
            {
                "category_id": category_id,
                "segmentation": [polygon],
                "area": area,
                "bbox": [x, y, w, h],
                "iscrowd": 0,
            }
        )
    image += rng.normal(0, 6, image.shape).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8), annotations


def categories(class_names):
    """COCO categories: ids 1..N for the object classes (background is implicit)."""
    return [
        {"id": index, "name": name, "supercategory": name}
        for index, name in enumerate(class_names)
        if index > 0
    ]


def make_split(data_root, split, count, first_id, seed, size, class_names, with_annotations):
    """Write `count` JPEGs and return the split's COCO dict."""
    rng = np.random.default_rng([seed, first_id])
    images, annotations = [], []
    for offset in range(count):
        image_id = first_id + offset
        file_name = f"batch_{1 + image_id % 3:02d}_vt/{image_id:04d}.jpg"
        picture, objects = draw_image(rng, size, int(rng.integers(3, 8)))
        path = Path(data_root) / file_name
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp_path:
            ok, encoded = cv2.imencode(".jpg", picture, [cv2.IMWRITE_JPEG_QUALITY, 92])
            tmp_path.write_bytes(encoded.tobytes())
        images.append({"id": image_id, "file_name": file_name, "width": size, "height": size})
        for annotation in objects:
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, **annotation})
    coco = {
        "info": {"description": f"segsubmit synthetic demo ({split})"},
        "images": images,
        "categories": categories(class_names),
    }
    if with_annotations:
        coco["annotations"] = annotations
    return coco


def make_demo_dataset(data_root, json_paths, counts, seed, size, class_names):
    """Generate the splits named in `counts` (test without annotations), write their jsons."""
    first_id = 0
    for split in counts:
        coco = make_split(
            data_root,
            split,
            counts[split],
            first_id,
            seed,
            size,
            class_names,
            with_annotations=split != "test",
        )
        first_id += counts[split]
        with atomic_path(json_paths[split]) as tmp_path:
            tmp_path.write_text(json.dumps(coco))


def demo_dataset_stage(data_root, counts, seed, image_size, class_names):
    """Stage entry: generate the synthetic demo dataset, `<data_root>/<split>.json` per split."""
    json_paths = {split: Path(data_root) / f"{split}.json" for split in counts}
    make_demo_dataset(data_root, json_paths, counts, seed, image_size, class_names)
    log.info("demo dataset: %s images under %s", counts, data_root)
