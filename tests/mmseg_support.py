"""What the mmseg tests share: installing MMSegmentation when it is missing (tests never skip for
it: a clean `pip install -e '.[test]' && python -m pytest` builds it, as CI does) and a tiny
random-init mmseg model written as mmseg's training writes one (config .py + checkpoint)."""

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
INSTALL_SCRIPT = REPO_ROOT / "tools" / "install_mmseg.sh"


def mmseg_importable():
    importlib.invalidate_caches()
    try:
        import mmseg.models  # noqa: F401
        from mmcv.ops import point_sample  # noqa: F401
    except (ImportError, AssertionError):
        return False
    return True


@pytest.fixture(scope="session")
def mmseg_installed():
    """mmseg importable in this interpreter: `tools/install_mmseg.sh` runs with this python when
    it is not (the mmcv build takes ~9 min on 2 cores, once per clone: the wheel is kept in
    .whl/)."""
    if not mmseg_importable():
        result = subprocess.run(
            ["bash", str(INSTALL_SCRIPT), sys.executable],
            capture_output=True,
            text=True,
            cwd=REPO_ROOT,
        )
        assert result.returncode == 0, (
            f"tools/install_mmseg.sh failed:\n{result.stdout[-5000:]}\n{result.stderr[-5000:]}"
        )
        assert mmseg_importable(), "tools/install_mmseg.sh ran, mmseg still not importable"
    return True


CONFIG_TEMPLATE = """\
# A tiny UPerNet-ResNet18 (as mmseg's configs/_base_/models/upernet_r50.py, smaller)
default_scope = "mmseg"
norm_cfg = dict(type="BN", requires_grad=True)
data_preprocessor = dict(
    type="SegDataPreProcessor",
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255,
    size=(64, 64),
    test_cfg=dict(size_divisor=32),
)
model = dict(
    type="EncoderDecoder",
    data_preprocessor=data_preprocessor,
    pretrained=None,
    backbone=dict(
        type="ResNetV1c",
        depth=18,
        base_channels=8,
        stem_channels=16,
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        dilations=(1, 1, 1, 1),
        strides=(1, 2, 2, 2),
        norm_cfg=norm_cfg,
        norm_eval=False,
        style="pytorch",
        contract_dilation=True,
    ),
    decode_head=dict(
        type="{head}",
        {head_args}
        dropout_ratio=0.1,
        num_classes={num_classes},
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(type="CrossEntropyLoss", use_sigmoid=False, loss_weight=1.0),
    ),
    auxiliary_head=dict(
        type="FCNHead",
        in_channels=32,
        in_index=2,
        channels=16,
        num_convs=1,
        concat_input=False,
        dropout_ratio=0.1,
        num_classes={num_classes},
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(type="CrossEntropyLoss", use_sigmoid=False, loss_weight=0.4),
    ),
    train_cfg=dict(),
    test_cfg=dict(mode="whole"),
)
test_pipeline = [
    dict(type="LoadImageFromFile"),
    dict(type="Resize", scale={scale}, keep_ratio=True),
    dict(type="LoadAnnotations", reduce_zero_label=False),
    dict(type="PackSegInputs"),
]
"""

HEADS = {
    "UPerHead": "in_channels=[8, 16, 32, 64], in_index=[0, 1, 2, 3], pool_scales=(1, 2, 3, 6), "
    "channels=16,",
    "FCNHead": "in_channels=64, in_index=3, channels=16, num_convs=2, concat_input=True,",
}


def write_mmseg_model(folder, head="UPerHead", num_classes=11, scale=(96, 72), seed=0):
    """`folder/config.py` and a random-init checkpoint `folder/model.pth` saved as mmseg's
    training saves one (`{"state_dict", "meta"}`), BatchNorm statistics randomised too so that
    the maps hold many classes. Needs mmseg."""
    import torch
    from mmseg.apis import init_model

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "config.py"
    config.write_text(
        CONFIG_TEMPLATE.format(
            head=head, head_args=HEADS[head], num_classes=num_classes, scale=tuple(scale)
        )
    )
    torch.manual_seed(seed)
    model = init_model(str(config), None, device="cpu")
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(1.0, 3.0)
                module.bias.uniform_(-1.0, 1.0)
        for head in (model.decode_head, model.auxiliary_head):
            torch.nn.init.normal_(head.conv_seg.weight, std=1.0)
            torch.nn.init.zeros_(head.conv_seg.bias)
    meta = {"dataset_meta": {"classes": tuple(f"c{i}" for i in range(num_classes))}}
    torch.save({"state_dict": model.state_dict(), "meta": meta}, folder / "model.pth")
    return config, folder / "model.pth"


TTA_TEMPLATE = """
img_ratios = {img_ratios}
tta_model = dict(type="SegTTAModel")
tta_pipeline = [
    dict(type="LoadImageFromFile", backend_args=None),
    dict(
        type="TestTimeAug",
        transforms=[
            [dict(type="Resize", scale_factor=r, keep_ratio=True) for r in img_ratios],
            [{flips}],
            [dict(type="LoadAnnotations")],
            [dict(type="PackSegInputs")],
        ],
    ),
]
"""
FLIPS = {
    "h": 'dict(type="RandomFlip", prob=1.0, direction="horizontal")',
    "v": 'dict(type="RandomFlip", prob=1.0, direction="vertical")',
}


def add_tta_pipeline(config, img_ratios=(0.5, 0.75, 1.0, 1.25), flips=("h",)):
    """Append `tta_model` and `tta_pipeline` to `config` as mmseg's configs/_base_/datasets/*.py
    write them: `TestTimeAug` over a Resize per ratio x no flip and each flip of `flips`."""
    choices = ['dict(type="RandomFlip", prob=0.0, direction="horizontal")']
    choices += [FLIPS[flip] for flip in flips]
    text = TTA_TEMPLATE.format(img_ratios=list(img_ratios), flips=", ".join(choices))
    Path(config).write_text(Path(config).read_text() + text)
    return config
