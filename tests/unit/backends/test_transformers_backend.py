"""The transformers backend (real library, tiny random-init models saved with save_pretrained,
CPU fp32): batched predictions equal the processor's own pipeline per image,
`processor([image]) -> model -> post_process_semantic_segmentation(target_sizes=[(h, w)])`,
pixel for pixel; the device-side resize equals torch's CPU kernel; one-line refusals."""

import os
import sys

import numpy as np
import pytest
import torch
import torchvision.transforms.v2.functional as tvF

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from transformers import (  # noqa: E402
    AutoImageProcessor,
    AutoModelForSemanticSegmentation,
    AutoModelForUniversalSegmentation,
    ConvNextConfig,
    Mask2FormerConfig,
    Mask2FormerForUniversalSegmentation,
    Mask2FormerImageProcessor,
    OneFormerConfig,
    SegformerConfig,
    SegformerForSemanticSegmentation,
    SegformerImageProcessor,
    SwinConfig,
    UperNetConfig,
    UperNetForSemanticSegmentation,
)

from segsubmit.backends.base import has_probabilities, load_predictor  # noqa: E402
from segsubmit.backends.transformers_model import (  # noqa: E402
    cpu_bilinear_resize,
    require_transformers,
)
from segsubmit.errors import SegsubmitError  # noqa: E402
from segsubmit.testing import model_settings, predict_shard, write_test_images  # noqa: E402

NUM_CLASSES = 11
STAGES = ["stage1", "stage2", "stage3", "stage4"]


@pytest.fixture(autouse=True)
def equal_threads(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def segformer():
    config = SegformerConfig(
        num_labels=NUM_CLASSES, hidden_sizes=[8, 16, 32, 64], decoder_hidden_size=32,
        depths=[1, 1, 1, 1], num_attention_heads=[1, 1, 2, 2],
    )  # fmt: skip
    return SegformerForSemanticSegmentation(config), SegformerImageProcessor(
        size={"height": 64, "width": 96}
    )


def upernet():
    backbone = ConvNextConfig(
        hidden_sizes=[8, 16, 32, 64], depths=[1, 1, 1, 1], out_features=STAGES
    )
    config = UperNetConfig(
        backbone_config=backbone, hidden_size=16, auxiliary_in_channels=32,
        auxiliary_channels=8, num_labels=NUM_CLASSES,
    )  # fmt: skip
    return UperNetForSemanticSegmentation(config), SegformerImageProcessor(
        size={"height": 80, "width": 80}
    )


def mask2former():
    backbone = SwinConfig(
        embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1], window_size=4,
        out_features=STAGES,
    )  # fmt: skip
    config = Mask2FormerConfig(
        backbone_config=backbone, num_labels=NUM_CLASSES, hidden_dim=32, mask_feature_size=32,
        feature_size=32, encoder_feedforward_dim=64, dim_feedforward=64, encoder_layers=1,
        decoder_layers=2, num_queries=8, num_attention_heads=2,
    )  # fmt: skip
    processor = Mask2FormerImageProcessor(size={"shortest_edge": 64, "longest_edge": 128})
    model = Mask2FormerForUniversalSegmentation(config)
    with torch.no_grad():  # its init makes one class win everywhere: spread the queries
        for parameter in model.parameters():
            if parameter.dim() > 1:
                parameter.normal_(0, 0.3)
    return model, processor


def save(folder, build, seed=0):
    torch.manual_seed(seed)
    model, processor = build()
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def hf_settings(folder, num_classes=NUM_CLASSES):
    return model_settings(
        weights=str(folder), num_classes=num_classes, backend="transformers", device="cpu"
    )


def library_labels(folder, array):
    """The library's own pipeline on one image (HWC uint8, as a user passes a decoded image)."""
    processor = AutoImageProcessor.from_pretrained(folder, local_files_only=True)
    auto = (
        AutoModelForUniversalSegmentation
        if "mask2former" in processor.__class__.__name__.lower()
        else AutoModelForSemanticSegmentation
    )
    model = auto.from_pretrained(folder, local_files_only=True).eval()
    with torch.no_grad():
        outputs = model(**processor([array], return_tensors="pt"))
    (labels,) = processor.post_process_semantic_segmentation(
        outputs, target_sizes=[array.shape[:2]]
    )
    return labels.numpy().astype(np.uint8)


@pytest.mark.parametrize(
    ("build", "on_device"), [(segformer, True), (upernet, True), (mask2former, False)]
)
def test_batched_predictions_equal_the_processors_pipeline(tmp_path, build, on_device):
    """A shard of mixed sizes in batches of 4 equals the processor's per-image pipeline, every
    pixel; SegFormer-style processors run on the device, Mask2Former's itself on the CPU."""
    folder = save(tmp_path / "model", build)
    entries, arrays = write_test_images(tmp_path)
    predictor = load_predictor(hf_settings(folder))
    assert predictor.on_device is on_device
    maps = predict_shard(entries, tmp_path, predictor, batch_size=4, workers=0)
    for label_map, array in zip(maps, arrays, strict=True):
        assert label_map.shape == array.shape[:2]
        np.testing.assert_array_equal(label_map, library_labels(folder, array))
    assert len(np.unique(np.concatenate([m.ravel() for m in maps]))) > 1


def library_scores(folder, array):
    """(labels, segmentation_scores) of the processor's own pipeline on one image."""
    processor = AutoImageProcessor.from_pretrained(folder, local_files_only=True)
    universal = "mask2former" in type(processor).__name__.lower()
    auto = AutoModelForUniversalSegmentation if universal else AutoModelForSemanticSegmentation
    model = auto.from_pretrained(folder, local_files_only=True).eval()
    with torch.no_grad():
        outputs = model(**processor([array], return_tensors="pt"))
    (item,) = processor.post_process_semantic_segmentation(
        outputs, target_sizes=[array.shape[:2]], return_segmentation_scores=True
    )
    return item.segmentation.numpy(), item.segmentation_scores, universal


@pytest.mark.parametrize("build", [segformer, upernet, mask2former])
def test_probabilities_are_the_processors_scores(tmp_path, build):
    """`labels_and_probabilities` per batch of one size: labels equal the processor's per-image
    labels; probabilities equal the softmax of its upsampled logits (SegFormer, UperNet) or its
    class x mask scores divided by their per-pixel sum (Mask2Former), sum to 1; their argmax
    equals the labels except at exact ties of the probabilities (counted, all ties)."""
    folder = save(tmp_path / "model", build)
    entries, arrays = write_test_images(tmp_path)
    predictor = load_predictor(hf_settings(folder))
    assert has_probabilities(predictor)
    agree = total = ties = 0
    for size in dict.fromkeys(entry.size for entry in entries):
        chosen = [array for entry, array in zip(entries, arrays, strict=True) if entry.size == size]
        batch = torch.stack([torch.from_numpy(a.copy()).permute(2, 0, 1) for a in chosen])
        labels, probabilities = predictor.predict_probabilities(batch, size)
        assert probabilities.dtype == torch.float32 and probabilities.shape[1] == NUM_CLASSES
        torch.testing.assert_close(probabilities.sum(dim=1), torch.ones(len(chosen), *size))
        for index, array in enumerate(chosen):
            their_labels, scores, universal = library_scores(folder, array)
            expected = scores / scores.sum(dim=0) if universal else scores.softmax(dim=0)
            np.testing.assert_array_equal(labels[index].numpy(), their_labels)
            torch.testing.assert_close(probabilities[index], expected, rtol=1e-5, atol=1e-6)
        top = probabilities.argmax(dim=1)
        differ = top != labels.long()
        at_label = probabilities.gather(1, labels.long()[:, None])[:, 0]
        ties += int((differ & (at_label == probabilities.amax(dim=1))).sum())
        agree += int((~differ).sum())
        total += labels.numel()
    assert agree + ties == total, f"{total - agree - ties} disagreements that are not ties"
    assert agree / total >= 0.9999, f"argmax of the probabilities = the labels: {agree}/{total}"
    print(f"{build.__name__}: argmax of probabilities = labels, {agree}/{total}; {ties} ties")


def test_device_resize_equals_torchs_cpu_uint8_kernel():
    """`cpu_bilinear_resize` (the processor's resize as torch ops on any device) equals
    torchvision's resize of uint8 CPU tensors (antialias) on up-, down- and mixed scalings."""
    generator = torch.Generator().manual_seed(0)
    pairs = [((48, 80), (64, 64)), ((80, 48), (64, 64)), ((300, 401), (64, 64)),
             ((512, 512), (64, 100)), ((100, 64), (512, 512)), ((7, 600), (33, 17))]  # fmt: skip
    sides = torch.randint(5, 400, (10, 4), generator=generator).tolist()
    pairs += [((a, b), (c, d)) for a, b, c, d in sides]
    for (height, width), (out_height, out_width) in pairs:
        images = torch.randint(0, 256, (2, 3, height, width), dtype=torch.uint8)
        expected = tvF.resize(images, [out_height, out_width], antialias=True)
        assert torch.equal(cpu_bilinear_resize(images, out_height, out_width), expected), (
            (height, width),
            (out_height, out_width),
        )


def refusal(folder, num_classes=NUM_CLASSES):
    with pytest.raises(SegsubmitError) as caught:
        load_predictor(hf_settings(folder, num_classes))
    message = str(caught.value)
    assert "\n" not in message and len(message) < 400, message
    return message


def test_refusals_are_one_line(tmp_path):
    folder = save(tmp_path / "segformer", segformer)
    assert "model predicts 11 classes but config `classes` lists 5" in refusal(folder, 5)
    (tmp_path / "empty").mkdir()
    assert "not a transformers save_pretrained folder" in refusal(tmp_path / "empty")
    OneFormerConfig(num_labels=NUM_CLASSES).save_pretrained(tmp_path / "oneformer")
    assert "oneformer models are not supported" in refusal(tmp_path / "oneformer")
    (folder / "preprocessor_config.json").unlink()
    assert "no image processor" in refusal(folder)


def test_missing_library_names_the_pip_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(SegsubmitError, match=r"pip install -e '\.\[transformers\]'"):
        require_transformers()


def test_declaration_names_its_env_packages_and_install():
    from pathlib import Path

    from segsubmit.backends.transformers_backend import TransformersBackend

    env = Path(__file__).resolve().parents[3] / "envs" / TransformersBackend.conda_env
    assert "transformers>=5,<6" in env.read_text()
    assert "transformers" in TransformersBackend.packages
    assert TransformersBackend.weights_kind == "folder"
    assert not TransformersBackend.uses_normalisation  # the processor's own
