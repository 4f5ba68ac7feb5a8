"""The smp backend (segmentation_models_pytorch 0.6, real library, random-init models on the
CPU in fp32): batched predictions equal the library's model's own forward + argmax pixel for
pixel, with the padding rule for sizes the model refuses; checkpoints as competitors save
them; one-line refusals."""

import argparse
import sys

import numpy as np
import pytest
import segmentation_models_pytorch as smp
import torch

from segsubmit.backends.base import load_predictor
from segsubmit.backends.smp_backend import SmpBackend
from segsubmit.backends.smp_model import build_smp_model, require_smp
from segsubmit.errors import SegsubmitError
from segsubmit.testing import model_settings, predict_shard, write_test_images

NUM_CLASSES = 11
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@pytest.fixture(autouse=True)
def equal_threads(monkeypatch):
    """Both sides of every comparison run on one thread (float sums depend on it)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def smp_settings(weights, architecture="Unet", encoder="resnet18", **kwargs):
    options = {"architecture": architecture, "encoder": encoder, "kwargs": kwargs}
    return model_settings(
        weights=str(weights), num_classes=NUM_CLASSES, backend="smp", options=options, device="cpu"
    )


def save_model(path, architecture="Unet", encoder="resnet18", num_classes=NUM_CLASSES, seed=0):
    torch.manual_seed(seed)
    model = build_smp_model(architecture, encoder, num_classes).eval()
    torch.save(model.state_dict(), path)
    return model


def reference_labels(model, array):
    """The library's model on one image, by the documented rule: (x - 255 mean) / (255 std);
    padded at the bottom/right with zeros to multiples of `encoder.output_stride` when the
    model requires divisible sides (Unet does not); logits cropped back; argmax."""
    image = torch.from_numpy(np.array(array)).permute(2, 0, 1)[None].float()
    mean = torch.tensor(MEAN).view(1, 3, 1, 1) * 255
    std = torch.tensor(STD).view(1, 3, 1, 1) * 255
    image = (image - mean) / std
    height, width = array.shape[:2]
    if model.requires_divisible_input_shape:
        stride = model.encoder.output_stride
        padded = torch.zeros(1, 3, -(-height // stride) * stride, -(-width // stride) * stride)
        padded[..., :height, :width] = image
        image = padded
    with torch.no_grad():
        logits = model(image)
    return logits[0, :, :height, :width].argmax(0).numpy().astype(np.uint8)


@pytest.mark.parametrize(
    ("architecture", "stride"), [("Unet", 32), ("FPN", 32), ("DeepLabV3Plus", 16)]
)
def test_batched_predictions_equal_the_models_own(tmp_path, architecture, stride):
    """A shard of mixed sizes (square, non-square, not multiples of 32/16) in batches of 4
    through the predictor equals the model's own per-image forward + argmax, every pixel."""
    model = save_model(tmp_path / "model.pt", architecture)
    assert model.encoder.output_stride == stride
    entries, arrays = write_test_images(tmp_path)
    predictor = load_predictor(smp_settings(tmp_path / "model.pt", architecture))
    maps = predict_shard(entries, tmp_path, predictor, batch_size=4, workers=0)
    for label_map, array in zip(maps, arrays, strict=True):
        assert label_map.shape == array.shape[:2]
        np.testing.assert_array_equal(label_map, reference_labels(model, array))
    assert len(np.unique(np.concatenate([m.ravel() for m in maps]))) > 1  # not a constant map


def test_models_that_need_divisible_sides_refuse_others_and_unet_does_not(tmp_path):
    """What SMP 0.6 does itself: FPN raises on 50x70, Unet takes it (so it is never padded)."""
    fpn = build_smp_model("FPN", "resnet18", NUM_CLASSES).eval()
    unet = build_smp_model("Unet", "resnet18", NUM_CLASSES).eval()
    with torch.no_grad(), pytest.raises(RuntimeError, match="divisible by 32"):
        fpn(torch.zeros(1, 3, 50, 70))
    with torch.no_grad():
        assert unet(torch.zeros(1, 3, 50, 70)).shape == (1, NUM_CLASSES, 50, 70)
    save_model(tmp_path / "unet.pt")
    assert load_predictor(smp_settings(tmp_path / "unet.pt")).multiple == 1


def wrapped(state_dict, form):
    prefixed = lambda prefix: {prefix + key: value for key, value in state_dict.items()}  # noqa: E731
    return {
        "plain": state_dict,
        "model": {"model": state_dict, "epoch": 7},
        "lightning": {
            "state_dict": {**prefixed("model."), "criterion.weight": torch.ones(NUM_CLASSES)},
            "epoch": 3,
            "global_step": 120,
            "pytorch-lightning_version": "2.4.0",
        },
        "dataparallel": prefixed("module."),
        "lightning+dataparallel": {"state_dict": prefixed("model.module.")},
        "compiled": {"model_state_dict": prefixed("_orig_mod.")},
    }[form]


@pytest.mark.parametrize(
    "form", ["plain", "model", "lightning", "dataparallel", "lightning+dataparallel", "compiled"]
)
def test_checkpoints_as_competitors_save_them(tmp_path, form):
    model = save_model(tmp_path / "plain.pt", "FPN")
    torch.save(wrapped(model.state_dict(), form), tmp_path / "model.ckpt")
    predictor = load_predictor(smp_settings(tmp_path / "model.ckpt", "FPN"))
    loaded = predictor.module.state_dict()
    for key, value in model.state_dict().items():
        assert torch.equal(loaded[key], value), key


def refusal(weights, **settings):
    with pytest.raises(SegsubmitError) as caught:
        load_predictor(smp_settings(weights, **settings))
    message = str(caught.value)
    assert "\n" not in message and len(message) < 700, message
    return message


def test_checkpoints_that_do_not_fit_are_refused_in_one_line(tmp_path):
    save_model(tmp_path / "r34.pt", "FPN", "resnet34")
    message = refusal(tmp_path / "r34.pt", architecture="FPN")
    assert "96 unexpected (encoder.layer1.2.conv1.weight" in message
    assert "another encoder than model.smp.encoder 'resnet18'" in message

    save_model(tmp_path / "classes.pt", "FPN", num_classes=5)
    message = refusal(tmp_path / "classes.pt", architecture="FPN")
    assert "2 of another shape (segmentation_head.0.weight: checkpoint (5, 128, 1, 1)" in message
    assert "trained for 5 classes, config `classes` lists 11" in message

    message = refusal(tmp_path / "r34.pt", architecture="Unet")
    assert "missing (decoder." in message and "unexpected (encoder." in message
    assert "check model.smp.architecture, encoder and kwargs" in message

    torch.manual_seed(0)
    aux = smp.create_model(
        "FPN", "resnet18", encoder_weights=None, classes=NUM_CLASSES,
        aux_params={"classes": NUM_CLASSES},
    )  # fmt: skip
    torch.save(aux.state_dict(), tmp_path / "aux.pt")
    assert "trained with aux_params" in refusal(tmp_path / "aux.pt", architecture="FPN")
    # with the training's aux_params it loads; the classification output is not the logits
    predictor = load_predictor(
        smp_settings(tmp_path / "aux.pt", "FPN", aux_params={"classes": NUM_CLASSES})
    )
    assert predictor.predict(torch.zeros(1, 3, 40, 40, dtype=torch.uint8), (40, 40)).shape == (
        1,
        40,
        40,
    )

    hparams = argparse.Namespace(lr=0.1)  # save_hyperparameters() pickles such objects
    torch.save({"state_dict": aux.state_dict(), "hyper_parameters": hparams}, tmp_path / "h.ckpt")
    message = refusal(tmp_path / "h.ckpt")
    assert "the checkpoint pickles argparse.Namespace, which a weights-only load refuses" in message

    torch.save({"epoch": 3, "optimizer": {"lr": 0.1}}, tmp_path / "empty.pt")
    assert "no state dict of tensors" in refusal(tmp_path / "empty.pt")


def test_unknown_architecture_and_encoder_are_one_line(tmp_path):
    save_model(tmp_path / "model.pt")
    assert "choose one of Unet, UnetPlusPlus" in refusal(tmp_path / "model.pt", architecture="Unt")
    assert "cannot build Unet with encoder 'resnet7'" in refusal(
        tmp_path / "model.pt", encoder="resnet7"
    )


def test_reserved_kwargs_are_refused():
    section = {"architecture": "Unet", "encoder": "resnet18", "kwargs": {"classes": 3}}
    with pytest.raises(SegsubmitError, match=r"model.smp.kwargs: \['classes'\] are set by"):
        SmpBackend.check_options(section)


def test_missing_library_names_the_pip_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "segmentation_models_pytorch", None)  # import fails
    with pytest.raises(SegsubmitError, match=r"pip install -e '\.\[smp\]'"):
        require_smp()


def test_declaration_names_its_env_packages_and_install():
    from pathlib import Path

    env = Path(__file__).resolve().parents[3] / "envs" / SmpBackend.conda_env
    assert "segmentation-models-pytorch==0.6.0" in env.read_text()
    assert "segmentation-models-pytorch" in SmpBackend.packages
    assert SmpBackend.uses_normalisation and SmpBackend.weights_kind == "file"
