"""The mmseg backend against the real MMSegmentation 1.2.2 (installed by the `mmseg_installed`
fixture when missing, never skipped): batched predictions equal `inference_model` per image on
every pixel (CPU fp32, same process so equal threads), in whole and slide mode, and the
refusals are one line."""

import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from mmseg_support import INSTALL_SCRIPT, REPO_ROOT, mmseg_installed, write_mmseg_model  # noqa: F401

from segsubmit.errors import SegsubmitError
from segsubmit.manifest import ManifestEntry
from segsubmit.plugins import backend_named
from segsubmit.settings import ModelSettings
from segsubmit.testing import predict_shard

pytestmark = [
    pytest.mark.usefixtures("mmseg_installed"),
    pytest.mark.filterwarnings("ignore::UserWarning"),
]
SLIDE = {"model.test_cfg": {"mode": "slide", "crop_size": (48, 48), "stride": (32, 32)}}
SIZES = [(64, 64)] * 3 + [(50, 70)] * 3 + [(37, 90)] * 2  # mixed sizes, two non-square


@pytest.fixture(scope="module")
def mmseg_model(tmp_path_factory, mmseg_installed):  # noqa: F811
    return write_mmseg_model(tmp_path_factory.mktemp("mmseg"))


def settings_for(config, weights, num_classes=11, cfg_options=None, **overrides):
    options = {"config_file": str(config), "cfg_options": cfg_options or {}}
    return ModelSettings("mmseg", str(weights), num_classes, device="cpu", options=options,
                         **overrides)  # fmt: skip


def load(settings):
    declaration = backend_named("mmseg")
    device = torch.device("cpu")
    return declaration.load(settings, device), declaration.host_transform(settings, device)


def write_pngs(folder, sizes, seed=0):
    """Smooth random RGB pictures as lossless PNGs (so that mmcv.imread and our decoder read the
    same pixels), as manifest entries."""
    rng = np.random.default_rng(seed)
    entries = []
    for index, (height, width) in enumerate(sizes):
        coarse = rng.integers(0, 256, (max(height // 2, 2), max(width // 2, 2), 3), np.uint8)
        picture = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
        name = f"{index:02d}.png"
        cv2.imwrite(str(folder / name), picture)
        entries.append(ManifestEntry(index, name, name, width, height, 0, ""))
    return entries


def reference(config, weights, cfg_options=None):
    from mmseg.apis import init_model

    return init_model(str(config), str(weights), device="cpu", cfg_options=cfg_options)


def reference_labels(model, image):
    from mmseg.apis import inference_model

    return inference_model(model, image).pred_sem_seg.data[0].numpy()


@pytest.mark.parametrize(
    ("cfg_options", "workers"),
    [(None, 0), (SLIDE, 0), (None, 2)],
    ids=["whole", "slide", "workers"],
)
def test_batched_equals_inference_model_on_every_pixel(mmseg_model, tmp_path, cfg_options, workers):
    config, weights = mmseg_model
    entries = write_pngs(tmp_path, SIZES)
    predictor, transform = load(settings_for(config, weights, cfg_options=cfg_options))
    ours = predict_shard(entries, tmp_path, predictor, 3, workers, transform=transform)
    model = reference(config, weights, cfg_options)
    equal = total = 0
    classes = set()
    for entry, labels in zip(entries, ours, strict=True):
        theirs = reference_labels(model, str(tmp_path / entry.path))  # BGR file read by mmcv
        assert labels.shape == theirs.shape == entry.size
        equal += int((labels == theirs).sum())
        total += theirs.size
        classes |= set(np.unique(theirs).tolist())
    assert equal == total, f"{equal} / {total} pixels equal"
    assert len(classes) >= 3  # the maps are not trivially one class


def test_channel_rule_rgb_batches_equal_bgr_arrays(mmseg_model):
    config, weights = mmseg_model
    rng = np.random.default_rng(1)
    rgb = cv2.resize(rng.integers(0, 256, (20, 30, 3), np.uint8), (90, 60))
    predictor, transform = load(settings_for(config, weights))
    image = transform(torch.from_numpy(rgb).permute(2, 0, 1).contiguous())
    ours = predictor.predict(torch.stack([image, image]), (60, 90)).numpy()
    model = reference(config, weights)
    assert (ours[0] == reference_labels(model, rgb[:, :, ::-1].copy())).all()
    assert (ours[1] == ours[0]).all()
    assert (ours[0] != reference_labels(model, rgb)).any()  # the order matters for this model


def test_fcn_head_without_padding(tmp_path):
    config, weights = write_mmseg_model(tmp_path, head="FCNHead", scale=(80, 80))
    text = config.read_text().replace("    test_cfg=dict(size_divisor=32),\n", "")
    config.write_text(text)
    entries = write_pngs(tmp_path, [(45, 61)] * 2)
    predictor, transform = load(settings_for(config, weights))
    ours = predict_shard(entries, tmp_path, predictor, 2, 0, transform=transform)
    model = reference(config, weights)
    for entry, labels in zip(entries, ours, strict=True):
        assert (labels == reference_labels(model, str(tmp_path / entry.path))).all()


def refusal(settings):
    with pytest.raises(SegsubmitError) as raised:
        load(settings)
    message = str(raised.value)
    assert "\n" not in message and len(message) < 600, message
    return message


def test_missing_config_file_is_refused(mmseg_model, tmp_path):
    message = refusal(settings_for(tmp_path / "nope.py", mmseg_model[1]))
    assert "model.mmseg.config_file" in message and "nope.py" in message


def test_config_that_is_not_a_segmentor_is_refused(mmseg_model, tmp_path):
    backbone_only = tmp_path / "backbone.py"
    backbone_only.write_text("model = dict(type='ResNetV1c', depth=18)\ntest_pipeline = []\n")
    assert "not an mmseg segmentor" in refusal(settings_for(backbone_only, mmseg_model[1]))
    no_model = tmp_path / "empty.py"
    no_model.write_text("x = 1\n")
    assert "no `model = dict(type=...)`" in refusal(settings_for(no_model, mmseg_model[1]))


def test_class_count_mismatch_is_refused(mmseg_model):
    message = refusal(settings_for(*mmseg_model, num_classes=5))
    assert "11 classes" in message and "lists 5" in message


def test_checkpoint_that_does_not_fit_is_refused(mmseg_model, tmp_path):
    config, weights = mmseg_model
    checkpoint = torch.load(weights, weights_only=True)
    state = checkpoint["state_dict"]
    renamed = {key.replace("backbone.", "encoder."): value for key, value in state.items()}
    torch.save({"state_dict": renamed, "meta": {}}, tmp_path / "renamed.pth")
    message = refusal(settings_for(config, tmp_path / "renamed.pth"))
    assert "missing: backbone." in message and "unexpected: encoder." in message
    assert "more)" in message  # hundreds of keys, three named
    other, other_weights = write_mmseg_model(tmp_path / "19", num_classes=19)
    message = refusal(settings_for(config, other_weights))
    assert "decode_head.conv_seg.weight (19, 16, 1, 1) vs model (11, 16, 1, 1)" in message


def test_pickled_checkpoint_is_refused_with_the_way_out(mmseg_model, tmp_path):
    from mmengine.logging import HistoryBuffer  # what mmengine's Runner saves in message_hub

    checkpoint = torch.load(mmseg_model[1], weights_only=True)
    checkpoint["message_hub"] = {"log_scalars": {"loss": HistoryBuffer()}}
    torch.save(checkpoint, tmp_path / "runner.pth")
    message = refusal(settings_for(mmseg_model[0], tmp_path / "runner.pth"))
    assert "weights-only" in message and "state_dict" in message


def test_missing_mmseg_names_the_install_command(mmseg_model):
    code = (
        "import sys; sys.modules['mmseg'] = None\n"  # an import of mmseg now fails, as uninstalled
        "from segsubmit.settings import ModelSettings\n"
        "from segsubmit.plugins import backend_named\n"
        f"s = ModelSettings('mmseg', {str(mmseg_model[1])!r}, 11, device='cpu', "
        f"options={{'config_file': {str(mmseg_model[0])!r}, 'cfg_options': {{}}}})\n"
        "backend_named('mmseg').load(s, 'cpu')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode != 0
    assert "SegsubmitError: model.backend: mmseg is not usable" in result.stderr
    assert "bash tools/install_mmseg.sh" in result.stderr


def test_declaration_env_and_install_script():
    declaration = backend_named("mmseg")
    assert declaration.file_options == ("config_file",)
    assert {"mmsegmentation", "mmcv", "mmengine"} <= set(declaration.packages)
    assert "bash tools/install_mmseg.sh" in declaration.install_hint
    env = REPO_ROOT / "envs" / declaration.conda_env
    assert env.is_file()
    post_deploy = env.with_name("mmseg.post-deploy.sh")
    assert post_deploy.resolve() == INSTALL_SCRIPT.resolve()
    # installed already (the fixture): the script only checks and says so
    result = subprocess.run(["bash", str(INSTALL_SCRIPT), sys.executable], capture_output=True,
                            text=True)  # fmt: skip
    assert result.returncode == 0 and "already installed" in result.stdout, result.stderr


def test_a_shared_infer_job_equals_each_model_alone(mmseg_model, tmp_path):
    """One decode for an mmseg model (its own host transform, twice: two views) and an SMP
    model (none), through DataLoader workers: each model's maps and probabilities equal its
    own infer job's."""
    from conftest import CLASSES, make_dataset

    from segsubmit.infer import ModelRun, infer_models_stage, infer_stage
    from segsubmit.labels import read_label_shard
    from segsubmit.manifest import manifest_stage
    from segsubmit.probabilities import ProbabilityOutputs, read_probability_shard
    from segsubmit.settings import InferSettings
    from segsubmit.testing import smp_unet_settings

    root = make_dataset(tmp_path / "data", {"val": 5}, size=48)
    shard = tmp_path / "0.json"
    manifest_stage(root / "val.json", root, CLASSES, tmp_path / "manifest.json", [shard])
    config, weights = mmseg_model
    models = [
        settings_for(config, weights),
        smp_unet_settings(tmp_path / "smp.pt"),
        settings_for(config, weights, cfg_options={"model.test_cfg": {"mode": "whole"}}),
    ]

    def run(index, folder):
        outputs = ProbabilityOutputs(probabilities=str(folder / f"{index}.p.npz"), size=(24, 24))
        return ModelRun(models[index], None, folder / f"{index}.npz", outputs)

    infer = InferSettings(batch_size=2, workers=2)
    (tmp_path / "alone").mkdir(), (tmp_path / "shared").mkdir()
    for index in range(len(models)):
        alone = run(index, tmp_path / "alone")
        infer_stage(shard, alone.labels_path, alone.model, infer, outputs=alone.outputs)
    infer_models_stage(shard, [run(i, tmp_path / "shared") for i in range(len(models))], infer)
    for index in range(len(models)):
        ids, ours = read_label_shard(tmp_path / "shared" / f"{index}.npz")
        their_ids, theirs = read_label_shard(tmp_path / "alone" / f"{index}.npz")
        assert ids == their_ids and np.array_equal(ours, theirs) and len(np.unique(ours)) > 1
        ours = read_probability_shard(tmp_path / "shared" / f"{index}.p.npz")[1]
        theirs = read_probability_shard(tmp_path / "alone" / f"{index}.p.npz")[1]
        assert np.array_equal(ours, theirs)
