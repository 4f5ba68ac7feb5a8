"""The detectron2 backend against the real detectron2: identical to DefaultPredictor per image.

Needs detectron2: after `pip install -e .`, the command in
segsubmit.backends.detectron2_backend.INSTALL_COMMAND (`pip install --no-build-isolation
'detectron2 @ git+…'`), or clone github.com/facebookresearch/detectron2 into .deps/detectron2
and run `PYTHONPATH=.deps/detectron2 python -m pytest tests/workflow/test_detectron2.py`
(see docs/detectron2.md).
"""

import subprocess
import sys
from dataclasses import replace

import cv2
import numpy as np
import pytest
import torch
from conftest import make_dataset, run_snakemake, tiny_config

from segsubmit.backends.base import host_transform, load_predictor
from segsubmit.backends.detectron2_backend import INSTALL_COMMAND
from segsubmit.errors import SegsubmitError
from segsubmit.formats.competition_csv import validate_submission
from segsubmit.manifest import Manifest
from segsubmit.testing import image_entry, model_settings, predict_shard, write_detectron2_model

pytest.importorskip(
    "detectron2",
    reason=f"detectron2 not installed: after `pip install -e .`, run `{INSTALL_COMMAND}`, or "
    "clone github.com/facebookresearch/detectron2 to .deps/detectron2 and set PYTHONPATH to it",
)

pytestmark = pytest.mark.filterwarnings(
    "ignore::FutureWarning",  # torch.jit deprecations inside detectron2
    "ignore::UserWarning",
)
SMALL_TEST_SIZES = ["INPUT.MIN_SIZE_TEST", "96", "INPUT.MAX_SIZE_TEST", "160"]


@pytest.fixture(scope="module")
def detectron2_model(tmp_path_factory):
    return write_detectron2_model(tmp_path_factory.mktemp("d2"))


def settings_for(config_file, weights, num_classes=11, opts=SMALL_TEST_SIZES):
    return model_settings(
        "detectron2", weights, num_classes,
        options={"config_file": str(config_file), "opts": list(opts)}, device="cpu",
    )  # fmt: skip


def predictor_and_transform(settings, preprocess_on):
    """The CPU predictor with DefaultPredictor's preprocessing in the DataLoader workers (the
    CPU path), or on the device side in `model_input` (the GPU path, here run on the CPU)."""
    predictor = load_predictor(settings)
    if preprocess_on == "device":
        predictor.preprocessed_on_host = False
        return predictor, None
    return predictor, host_transform(settings, predictor.device)


def write_images(folder, sizes, seed=0):
    """Smooth random pictures (JPEG) of the given (height, width) sizes, as manifest entries."""
    rng = np.random.default_rng(seed)
    entries = []
    for index, (height, width) in enumerate(sizes):
        coarse = rng.integers(0, 256, (max(height // 8, 2), max(width // 8, 2), 3), np.uint8)
        picture = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(str(folder / f"{index:02d}.jpg"), picture)
        name = f"{index:02d}.jpg"
        entries.append(image_entry(index, name, height, width))
    return entries


def default_predictor_argmax(config_file, weights, opts, path):
    """What the seed did: one image at a time through DefaultPredictor."""
    from detectron2.config import get_cfg
    from detectron2.engine import DefaultPredictor

    cfg = get_cfg()
    cfg.set_new_allowed(True)
    cfg.merge_from_file(str(config_file))
    cfg.merge_from_list(list(opts))
    cfg.MODEL.WEIGHTS = str(weights)
    cfg.MODEL.DEVICE = "cpu"
    predictor = DefaultPredictor(cfg)
    return predictor(cv2.imread(str(path)))["sem_seg"].argmax(0).to(torch.uint8).numpy()


@pytest.mark.parametrize("preprocess_on", ["workers", "device"])
def test_batched_equals_default_predictor_on_every_pixel(detectron2_model, tmp_path, preprocess_on):
    """Both preprocessing paths: Pillow in the DataLoader workers (the CPU path), and channel
    order + `pil_bilinear_resize` in `model_input` (the GPU path, here run on the CPU)."""
    config_file, weights = detectron2_model
    sizes = [(96, 96)] * 7 + [(72, 120)] * 5 + [(130, 70)] * 3 + [(101, 77)]
    entries = write_images(tmp_path, sizes)
    settings = settings_for(config_file, weights)
    predictor, transform = predictor_and_transform(settings, preprocess_on)
    batched = predict_shard(entries, tmp_path, predictor, 4, 2, transform=transform)
    compared = equal = 0
    for entry, label_map in zip(entries, batched, strict=True):
        reference = default_predictor_argmax(
            config_file, weights, SMALL_TEST_SIZES, tmp_path / entry.file_name
        )
        assert label_map.shape == reference.shape == entry.size
        compared += reference.size
        equal += int((label_map == reference).sum())
    print(f"\ndetectron2 equivalence: {equal} of {compared} pixels equal ({len(entries)} images)")
    assert equal == compared


@pytest.mark.parametrize("preprocess_on", ["workers", "device"])
def test_rgb_input_format_is_honoured(detectron2_model, tmp_path, preprocess_on):
    config_file, weights = detectron2_model
    opts = [*SMALL_TEST_SIZES, "INPUT.FORMAT", "RGB"]
    entries = write_images(tmp_path, [(64, 96)] * 2, seed=3)
    settings = settings_for(config_file, weights, opts=opts)
    predictor, transform = predictor_and_transform(settings, preprocess_on)
    batched = predict_shard(entries, tmp_path, predictor, 2, 0, transform=transform)
    reference = default_predictor_argmax(config_file, weights, opts, tmp_path / "01.jpg")
    assert np.array_equal(batched[1], reference)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (run on a GPU host)")
def test_gpu_preprocessing_equals_default_predictor_preprocessing(detectron2_model, tmp_path):
    """On a GPU the workers only decode; what reaches the model must be DefaultPredictor's
    input bit for bit (the model's own GPU arithmetic may differ from the CPU's)."""
    from segsubmit.backends.detectron2_model import DefaultPredictorPreprocess
    from segsubmit.images import decode_rgb

    config_file, weights = detectron2_model
    entries = write_images(tmp_path, [(72, 120)] * 3, seed=5)
    settings = settings_for(config_file, weights)
    predictor = load_predictor(replace(settings, device="cuda"))
    images = torch.stack([decode_rgb(tmp_path / e["file_name"]) for e in entries])
    on_device = predictor.model_input(images.cuda()).cpu()
    on_host = DefaultPredictorPreprocess("BGR", 96, 160)
    assert torch.equal(on_device, torch.stack([on_host(image) for image in images]))


def test_class_count_mismatch_is_refused(detectron2_model):
    config_file, weights = detectron2_model
    with pytest.raises(SegsubmitError, match="predicts 11 classes but config `classes` lists 5"):
        load_predictor(settings_for(config_file, weights, num_classes=5))


def test_checkpoint_that_does_not_fit_is_refused(detectron2_model, tmp_path):
    config_file, weights = detectron2_model
    opts = [*SMALL_TEST_SIZES, "MODEL.SEM_SEG_HEAD.NUM_CLASSES", "7"]
    with pytest.raises(SegsubmitError, match="weights do not fit"):
        load_predictor(settings_for(config_file, weights, num_classes=7, opts=opts))
    with pytest.raises(SegsubmitError, match="weights file not found"):
        load_predictor(settings_for(config_file, tmp_path / "nope.pth"))


def test_model_without_sem_seg_is_refused(tmp_path):
    config_file, weights = write_detectron2_model(tmp_path, configure=lambda cfg: None)
    with pytest.raises(SegsubmitError, match="GeneralizedRCNN"):
        load_predictor(settings_for(config_file, weights))


def test_missing_detectron2_gives_install_hint():
    blocked = (
        "import sys; sys.modules['detectron2'] = None\n"
        "from segsubmit.backends.base import load_predictor\n"
        "from segsubmit.testing import model_settings\n"
        "load_predictor(model_settings('detectron2', 'w', device='cpu'))"
    )
    result = subprocess.run([sys.executable, "-c", blocked], capture_output=True, text=True)
    assert f"detectron2 is not installed; after `pip install -e .`, run `{INSTALL_COMMAND}`" in (
        result.stderr
    )


@pytest.mark.workflow
def test_workflow_runs_with_detectron2_backend(detectron2_model, tmp_path):
    config_file, weights = detectron2_model
    make_dataset(tmp_path / "data", {"val": 6}, size=64)
    tiny_config(
        tmp_path,
        model={
            "backend": "detectron2",
            "weights": str(weights),
            "detectron2": {"config_file": str(config_file), "opts": SMALL_TEST_SIZES},
        },
    )
    run_snakemake(tmp_path)
    names = Manifest.load(tmp_path / "results" / "val" / "manifest.json").file_names()
    csv_path = tmp_path / "results" / "val" / "submission.csv"
    assert validate_submission(csv_path, names, 11, 32 * 32) == 6
    assert (tmp_path / "results" / "val" / "score" / "32x32.json").exists()
