"""The seed's submission script, seed B as written: a Detectron2 model from config + weights,
the BatchPredictor recipe (detectron2 issue #282: a DataLoader whose collate does
DefaultPredictor's preprocessing in 4 workers, `model(list)` on batches of 32), argmax and Kornia
nearest resize on the GPU batch, one `np.vstack` per batch, the CSV written with pandas
(`' '.join(str(e) ...)`, as the competition baseline). Imports nothing of segsubmit, so that a
fresh process pays what the seed's paid.

    python bench/seed_script.py --config config.yaml --weights model_final.pth \
        --images-json data/test.json --out submission.csv --size 256 256 [--min-size 512]
"""

import argparse
import json
from pathlib import Path

import cv2
import detectron2.data.transforms as T
import kornia
import numpy as np
import pandas as pd
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import get_cfg
from detectron2.modeling import build_model
from torch.utils.data import DataLoader, Dataset


def seed_config(config_file, weights, min_size=None):
    """The seed's yacs config; the model on the GPU when there is one (as the seed ran it)."""
    cfg = get_cfg()
    cfg.merge_from_file(str(config_file))
    cfg.MODEL.WEIGHTS = str(weights)
    cfg.MODEL.DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
    if min_size:
        cfg.INPUT.MIN_SIZE_TEST = cfg.INPUT.MAX_SIZE_TEST = min_size
    return cfg


class ImageDataset(Dataset):
    """cv2.imread of each path (BGR HWC uint8)."""

    def __init__(self, paths):
        self.paths = paths

    def __getitem__(self, index):
        return cv2.imread(str(self.paths[index]))

    def __len__(self):
        return len(self.paths)


class BatchPredictor:
    """DefaultPredictor's model, preprocessing in the DataLoader's collate, batches to the model."""

    def __init__(self, cfg, batch_size=32, workers=4):
        self.cfg = cfg.clone()
        self.batch_size, self.workers = batch_size, workers
        self.model = build_model(self.cfg)
        self.model.eval()
        DetectionCheckpointer(self.model).load(cfg.MODEL.WEIGHTS)
        self.aug = T.ResizeShortestEdge(
            [cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MIN_SIZE_TEST], cfg.INPUT.MAX_SIZE_TEST
        )
        self.input_format = cfg.INPUT.FORMAT

    def collate(self, batch):
        inputs = []
        for image in batch:
            if self.input_format == "RGB":
                image = image[:, :, ::-1]
            height, width = image.shape[:2]
            image = self.aug.get_transform(image).apply_image(image)
            image = torch.as_tensor(image.astype("float32").transpose(2, 0, 1))
            inputs.append({"image": image, "height": height, "width": width})
        return inputs

    def __call__(self, paths):
        loader = DataLoader(
            ImageDataset(paths),
            self.batch_size,
            shuffle=False,
            num_workers=self.workers,
            collate_fn=self.collate,
            pin_memory=torch.cuda.is_available(),
        )
        with torch.no_grad():
            for batch in loader:
                yield self.model(batch)


def seed_b(predictor, paths, size):
    """The seed's loop: argmax of each batch, Kornia nearest resize of the batch on the model's
    device, to the host, one `np.vstack` per batch -> (N, H*W) int64."""
    predictions = np.empty((0, size[0] * size[1]), dtype=np.int64)
    for outputs in predictor(paths):
        masks = torch.stack([output["sem_seg"].argmax(dim=0) for output in outputs])
        masks = kornia.geometry.transform.resize(
            masks[:, None].float(), size, interpolation="nearest"
        )
        masks = masks.long().cpu().numpy().reshape(len(outputs), -1)
        predictions = np.vstack((predictions, masks))
    return predictions


def write_csv(csv_path, file_names, predictions):
    """The baseline's pandas CSV: image_id, PredictionString of space-separated classes."""
    strings = [" ".join(str(e) for e in row.tolist()) for row in predictions]
    submission = pd.DataFrame({"image_id": file_names, "PredictionString": strings})
    submission.to_csv(csv_path, index=False)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", required=True)
    parser.add_argument("--weights", required=True)
    parser.add_argument("--images-json", required=True, type=Path)
    parser.add_argument("--out", required=True)
    parser.add_argument("--min-size", type=int, help="INPUT.MIN_SIZE_TEST = MAX_SIZE_TEST")
    parser.add_argument("--size", type=int, nargs=2, required=True, help="mask height width")
    arguments = parser.parse_args()
    file_names = [image["file_name"] for image in json.loads(arguments.images_json.read_text())
                  ["images"]]  # fmt: skip
    paths = [arguments.images_json.parent / name for name in file_names]
    cfg = seed_config(arguments.config, arguments.weights, arguments.min_size)
    predictions = seed_b(BatchPredictor(cfg), paths, tuple(arguments.size))
    write_csv(arguments.out, file_names, predictions)


if __name__ == "__main__":
    main()
