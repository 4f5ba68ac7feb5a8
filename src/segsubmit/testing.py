"""Builders that tests and benchmarks share (as detectron2 keeps `utils/testing.py`): synthetic
datasets, saved models, settings from the schema's defaults, reference implementations. Not
used by the workflow's stages."""

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np

from .config import default_config

DEFAULTS = default_config()
CLASSES = list(DEFAULTS["classes"])
NUM_CLASSES = len(CLASSES)


def make_dataset(root, counts, size=64, seed=0, class_names=CLASSES):
    """Synthetic COCO dataset under `root` (`<split>.json` + JPEGs per split in `counts`)."""
    from .synthetic import make_demo_dataset  # OpenCV, pycocotools: only where datasets are made

    root = Path(root)
    json_paths = {split: root / f"{split}.json" for split in counts}
    make_demo_dataset(root, json_paths, counts, seed, size, class_names)
    return root


def replicate_dataset(root, count, unique=64, size=512):
    """`root/val.json` listing `count` JPEGs: byte copies of `unique` synthetic ones under
    distinct names (batch_0N_vt/NNNNN.jpg), with their annotations."""
    root = Path(root)
    make_dataset(root / "unique", {"val": unique}, size=size)
    source = json.loads((root / "unique" / "val.json").read_text())
    images, annotations = [], []
    for index in range(count):
        original = source["images"][index % unique]
        file_name = f"batch_{index % 3 + 1:02d}_vt/{index:05d}.jpg"
        (root / file_name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(root / "unique" / original["file_name"], root / file_name)
        images.append({**original, "id": index, "file_name": file_name})
        for annotation in source["annotations"]:
            if annotation["image_id"] == original["id"]:
                annotations.append({**annotation, "id": len(annotations) + 1, "image_id": index})
    (root / "val.json").write_text(
        json.dumps({**source, "images": images, "annotations": annotations})
    )
    return root / "val.json"


def save_random_model(path, seed=0, architecture=None, num_classes=NUM_CLASSES):
    """An untrained torchvision segmentation state dict (default: the schema's architecture)."""
    import torch

    from .backends.torchvision_model import build_torchvision_model

    torch.manual_seed(seed)
    architecture = architecture or DEFAULTS["model"]["torchvision"]["architecture"]
    model = build_torchvision_model(architecture, num_classes)
    torch.save(model.state_dict(), path)
    return Path(path)


def semantic_fpn(cfg, num_classes=NUM_CLASSES):
    """configs/Misc/semantic_R_50_FPN_1x.yaml's model, inlined."""
    cfg.MODEL.META_ARCHITECTURE = "SemanticSegmentor"
    cfg.MODEL.BACKBONE.NAME = "build_resnet_fpn_backbone"
    cfg.MODEL.RESNETS.OUT_FEATURES = ["res2", "res3", "res4", "res5"]
    cfg.MODEL.FPN.IN_FEATURES = ["res2", "res3", "res4", "res5"]
    cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES = num_classes


def write_detectron2_model(folder, configure=semantic_fpn, seed=0):
    """A full config.yaml (as detectron2's training writes it) and a random-init checkpoint
    `model_final.pth` in `folder`; needs detectron2."""
    import torch
    from detectron2.checkpoint import DetectionCheckpointer
    from detectron2.config import get_cfg
    from detectron2.modeling import build_model

    folder = Path(folder)
    cfg = get_cfg()
    configure(cfg)
    cfg.MODEL.WEIGHTS = ""
    cfg.MODEL.DEVICE = "cpu"
    torch.manual_seed(seed)
    model = build_model(cfg)
    DetectionCheckpointer(model, save_dir=str(folder)).save("model_final")
    (folder / "config.yaml").write_text(cfg.dump())
    return folder / "config.yaml", folder / "model_final.pth"


def model_settings(backend, weights, num_classes=NUM_CLASSES, **overrides):
    """`ModelSettings` of `backend` with the schema's `model:` and `infer:` defaults (the
    backend's own section too), then `overrides` (`options` merged into the section's)."""
    from .settings import ModelSettings

    config = {**DEFAULTS, "model": {**DEFAULTS["model"], "backend": backend}}
    config["classes"] = [str(index) for index in range(num_classes)]
    settings = ModelSettings.from_config(config, weights)
    options = {**settings.options, **overrides.pop("options", {})}
    return replace(settings, options=options, **overrides)


def smp_unet_settings(weights):
    """Saves a random-init SMP Unet-ResNet18 state dict to `weights`; its `ModelSettings` (CPU):
    a model whose maps vary, unlike a random LR-ASPP's single class."""
    import torch

    from .backends.smp_model import build_smp_model

    torch.manual_seed(0)
    torch.save(build_smp_model("Unet", "resnet18", NUM_CLASSES).state_dict(), weights)
    options = {"architecture": "Unet", "encoder": "resnet18", "kwargs": {}}
    return model_settings("smp", str(weights), NUM_CLASSES, options=options, device="cpu")


def image_entry(index, file_name, height, width):
    """A `ManifestEntry` for an image file under the data root (shard 0, not hashed)."""
    from .manifest import ManifestEntry

    return ManifestEntry(index, file_name, file_name, width, height, shard=0, sha1="")


def save_manifest(path, file_names, size=(256, 256), data_root="."):
    """A manifest of `file_names` (all of `size`), as the manifest stage writes one."""
    from .manifest import Manifest

    entries = [image_entry(i, name, *size) for i, name in enumerate(file_names)]
    Manifest(str(data_root), tuple(entries)).save(path)
    return path


def predict_shard(
    entries, data_root, predictor, batch_size, workers, on_bad_image="error", transform=None
):
    """Label maps (uint8 numpy, original size) for manifest `entries`, in their order, held in
    memory (the infer stage streams them to a file instead). `transform`: the backend's host
    transform (`segsubmit.backends.base.host_transform`)."""
    from .infer import ModelJob, iter_shard_predictions, largest_batch_size, shard_loader

    if batch_size == "auto":
        batch_size = largest_batch_size(predictor, transform, entries[0])
    loader = shard_loader(entries, data_root, transform, predictor.device, batch_size, workers)
    label_maps = [None] * len(entries)
    jobs = [ModelJob(predictor)]
    for positions, (predicted,), _ in iter_shard_predictions(
        loader, entries, jobs, batch_size, workers, on_bad_image
    ):
        for index, position in enumerate(positions):
            label_maps[position] = predicted["labels"][index]
    return label_maps


def write_submission_baseline(csv_path, file_names, label_maps):
    """The competition baseline's writer (pandas, str.join): the reference the fast writer is
    checked and timed against."""
    import pandas as pd

    rows = [" ".join(str(e) for e in np.asarray(m).flatten().tolist()) for m in label_maps]
    frame = pd.DataFrame({"image_id": list(file_names), "PredictionString": rows})
    frame.to_csv(csv_path, index=False)


def parse_prediction_string(text):
    """Class indices of one PredictionString (str or ASCII bytes); None if it is not canonical
    space-separated ints of at most 3 digits: the reference `submission.prediction_summary` is
    tested against, and what bench/ compares CSVs with."""
    try:
        data = text.encode("ascii") if isinstance(text, str) else text
    except UnicodeEncodeError:
        return None
    chars = np.frombuffer(data, dtype=np.uint8)
    if not chars.size or chars[0] == 32 or chars[-1] == 32:
        return None
    separators = np.flatnonzero(chars == 32)
    if not ((chars - np.uint8(48) < 10) | (chars == 32)).all():
        return None
    if 2 * separators.size + 1 == chars.size and (chars[1::2] == 32).all():
        return chars[::2] - np.uint8(48)  # every value one digit
    starts = np.concatenate(([0], separators + 1))
    lengths = np.concatenate((separators, [chars.size])) - starts
    if lengths.min() == 0 or lengths.max() > 3:
        return None
    values = (chars[starts] - np.uint8(48)).astype(np.int64)
    for offset in (1, 2):  # the few multi-digit values, digit by digit
        longer = np.flatnonzero(lengths > offset)
        values[longer] = values[longer] * 10 + (chars[starts[longer] + offset] - np.uint8(48))
    return values


# Test images: square, non-square, sides not multiples of 32 (nor of 16 or 8), two of each size
MIXED_SIZES = [(64, 64), (64, 96), (50, 70), (33, 47), (64, 64), (64, 96), (50, 70), (33, 47)]


def write_test_images(folder, sizes=MIXED_SIZES, seed=0):
    """PNGs (lossless) of smooth random colours with noise under `folder` -> (manifest entries
    as the infer stage reads them, the images as HWC uint8 arrays read back with Pillow)."""
    import torch
    from PIL import Image

    from .manifest import ManifestEntry

    folder = Path(folder)
    generator = np.random.default_rng(seed)
    entries, arrays = [], []
    for index, (height, width) in enumerate(sizes):
        coarse = torch.from_numpy(generator.integers(0, 256, (1, 3, 6, 6)).astype(np.float32))
        image = torch.nn.functional.interpolate(coarse, size=(height, width), mode="bilinear")
        noise = torch.from_numpy(generator.normal(0, 12, (1, 3, height, width)).astype(np.float32))
        array = (image + noise).round().clamp(0, 255).to(torch.uint8)[0].permute(1, 2, 0).numpy()
        name = f"{index:03d}.png"
        Image.fromarray(array).save(folder / name)
        entries.append(ManifestEntry(index, name, name, width, height, shard=0, sha1=""))
        arrays.append(np.asarray(Image.open(folder / name).convert("RGB")))
    return entries, arrays


def mmseg_tta_reference(config, weights, device="cpu"):
    """MMSegmentation's own TTA: (the TTA model as `tools/test.py --tta` builds it, its
    checkpoint loaded as the Runner loads it, on `device`; the config's tta_pipeline)."""
    from mmengine import Config
    from mmengine.dataset import Compose
    from mmengine.registry import init_default_scope
    from mmengine.runner import load_checkpoint
    from mmseg.registry import MODELS

    cfg = Config.fromfile(str(config))
    cfg.tta_model.module = cfg.model
    cfg.model = cfg.tta_model
    init_default_scope("mmseg")
    model = MODELS.build(cfg.model)
    load_checkpoint(model, str(weights), map_location="cpu")
    return model.to(device).eval(), Compose(cfg.tta_pipeline)


def mmseg_tta_sample(image_path, size):
    """The tta_pipeline's input for one image, as a scored test set gives it (an all-zero
    annotation of `size` (height, width) written beside the image: its LoadAnnotations reads
    one)."""
    import cv2

    image_path = Path(image_path)
    annotation = image_path.with_name(f"{image_path.stem}_gt.png")
    cv2.imwrite(str(annotation), np.zeros(size, np.uint8))
    return dict(img_path=str(image_path), seg_map_path=str(annotation), reduce_zero_label=False,
                seg_fields=[])  # fmt: skip


def mmseg_tta_maps(model, pipeline, samples):
    """MMSeg's TTA label maps (uint8 numpy) of `samples` (`mmseg_tta_sample`), one image at a
    time: the pipeline, `pseudo_collate` at batch 1, `test_step` (the Runner's test loop)."""
    import torch
    from mmengine.dataset import pseudo_collate

    maps = []
    for sample in samples:
        with torch.no_grad():
            (result,) = model.test_step(pseudo_collate([pipeline(dict(sample))]))
        maps.append(result.pred_sem_seg.data[0].cpu().numpy())
    return maps
