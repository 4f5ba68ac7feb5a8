"""One real snakemake run per model-library backend, end to end on a tiny dataset: the
submission validates and the run is scored."""

import json

import pytest
import torch
from conftest import make_dataset, run_snakemake, tiny_config

from segsubmit.formats.competition_csv import validate_submission
from segsubmit.testing import NUM_CLASSES

pytestmark = pytest.mark.workflow


def val_file_names(workdir):
    coco = json.loads((workdir / "data" / "val.json").read_text())
    return [image["file_name"] for image in coco["images"]]


# the submission and the score (the report's figures are another stage's business); a flag
# first, so that the targets are not read as more --configfile values
TARGETS = ("--printshellcmds", "results/val/submission.csv", "results/val/score/32x32.json")


def check_results(workdir):
    csv_path = workdir / "results" / "val" / "submission.csv"
    names = val_file_names(workdir)
    assert validate_submission(csv_path, names, NUM_CLASSES, 32 * 32) == len(names)
    assert (workdir / "results" / "val" / "score" / "32x32.json").is_file()


def test_smp_backend_end_to_end(tmp_path):
    from segsubmit.backends.smp_model import build_smp_model

    make_dataset(tmp_path / "data", {"val": 6})
    torch.manual_seed(0)
    model = build_smp_model("Unet", "resnet18", NUM_CLASSES)
    torch.save(
        {"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}},
        tmp_path / "model.pt",
    )  # fmt: skip  (a Lightning checkpoint)
    tiny_config(
        tmp_path,
        model={
            "backend": "smp",
            "weights": "model.pt",
            "smp": {"architecture": "Unet", "encoder": "resnet18"},
        },
    )
    run_snakemake(tmp_path, *TARGETS)
    check_results(tmp_path)


def test_transformers_backend_end_to_end(tmp_path):
    from transformers import (
        SegformerConfig,
        SegformerForSemanticSegmentation,
        SegformerImageProcessor,
    )

    make_dataset(tmp_path / "data", {"val": 6})
    torch.manual_seed(0)
    config = SegformerConfig(
        num_labels=NUM_CLASSES, hidden_sizes=[8, 16, 32, 64], decoder_hidden_size=32,
        depths=[1, 1, 1, 1], num_attention_heads=[1, 1, 2, 2],
    )  # fmt: skip
    SegformerForSemanticSegmentation(config).save_pretrained(tmp_path / "segformer")
    SegformerImageProcessor(size={"height": 64, "width": 64}).save_pretrained(
        tmp_path / "segformer"
    )
    tiny_config(tmp_path, model={"backend": "transformers", "weights": "segformer"})
    run_snakemake(tmp_path, *TARGETS)
    check_results(tmp_path)
