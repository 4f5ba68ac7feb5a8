"""The benchmark's inputs: replicated synthetic images with their manifest and shard, and a
random-init Detectron2 R50-FPN at a chosen `INPUT.MIN_SIZE_TEST`."""

import importlib.util
from functools import partial
from pathlib import Path

from segsubmit.manifest import build_manifest, write_manifest
from segsubmit.testing import CLASSES, replicate_dataset, semantic_fpn, write_detectron2_model


def detectron2_missing():
    """Why the detectron2 rows cannot run (None when they can)."""
    if importlib.util.find_spec("detectron2") is None:
        return "detectron2 is not importable (docs/detectron2.md; PYTHONPATH=.deps/detectron2)"
    return None


def bench_dataset(folder, count):
    """(COCO json, its manifest entries) of `count` images under `folder`, with
    `manifest.json` and one `shard.json` holding them all."""
    folder = Path(folder)
    json_path = replicate_dataset(folder / "data", count, unique=min(count, 64))
    manifest = build_manifest(json_path, json_path.parent, CLASSES, 1)
    write_manifest(manifest, folder / "manifest.json", [folder / "shard.json"])
    return json_path, manifest.images


def sized_fpn(cfg, min_size):
    """semantic_fpn with `INPUT.MIN_SIZE_TEST` = `MAX_SIZE_TEST` = `min_size`."""
    semantic_fpn(cfg)
    cfg.INPUT.MIN_SIZE_TEST = cfg.INPUT.MAX_SIZE_TEST = min_size


def detectron2_model(folder, min_size):
    """(config.yaml, model_final.pth) in `folder`/`min_size` (written once); the same weights
    at every size."""
    folder = Path(folder) / str(min_size)
    if (folder / "model_final.pth").is_file():
        return folder / "config.yaml", folder / "model_final.pth"
    folder.mkdir(parents=True, exist_ok=True)
    return write_detectron2_model(folder, configure=partial(sized_fpn, min_size=min_size))
