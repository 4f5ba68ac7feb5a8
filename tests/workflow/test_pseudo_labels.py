"""pseudo_labels.splits: a split's predictions exported as MMSeg ann_dir PNGs and a COCO json of
RLE annotations by a real run, each equal to the predicted maps at the images' own size."""

import numpy as np
import pytest
import yaml
from conftest import run_snakemake
from PIL import Image

from segsubmit.labels import maps_in_order
from segsubmit.manifest import Manifest

pytestmark = pytest.mark.workflow


def test_pseudo_labels_equal_the_predictions(user_workdir):
    config = yaml.safe_load((user_workdir / "config.yaml").read_text())
    config["pseudo_labels"] = {"splits": ["val"]}
    (user_workdir / "config.yaml").write_text(yaml.safe_dump(config))
    run_snakemake(user_workdir)
    from pycocotools.coco import COCO

    split = user_workdir / "results" / "val"
    entries = Manifest.load(split / "manifest.json").images
    maps = list(maps_in_order([e.id for e in entries], sorted(split.glob("labels/*.npz"))))
    coco = COCO(str(split / "pseudo_labels" / "annotations.json"))
    assert sorted(coco.imgs) == sorted(e.id for e in entries)
    for entry, label_map in zip(entries, maps, strict=True):
        png = split / "pseudo_labels" / "ann_dir" / (entry.file_name.rsplit(".", 1)[0] + ".png")
        assert np.array_equal(np.asarray(Image.open(png)), label_map)
        rebuilt = np.zeros_like(label_map)
        for annotation in coco.loadAnns(coco.getAnnIds(imgIds=entry.id)):
            assert annotation["area"] == (label_map == annotation["category_id"]).sum()
            rebuilt[coco.annToMask(annotation) == 1] = annotation["category_id"]
        assert np.array_equal(rebuilt, label_map)
