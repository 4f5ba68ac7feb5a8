"""The mmseg backend's implementation: what `mmseg.apis.inference_model(model, image)` predicts,
pixel for pixel, for batches of images of one size.

`inference_model` runs, per image, the config's `test_pipeline` (its first transform made
`LoadImageFromNDArray`, `LoadAnnotations` dropped; e.g. `Resize(scale=..., keep_ratio=True)`
with cv2, then `PackSegInputs`), then `model.test_step`: the `data_preprocessor` (channel swap,
mean/std, padding to its test-time `size_divisor`/`size`), `predict` (`test_cfg.mode` whole or
slide), `postprocess_result` (padding cropped, logits resized bilinearly to the original size,
argmax). Here the pipeline runs in the DataLoader workers (`MMSegTestPipeline`, the host
transform) and the rest is called on the stacked batch, the way `inference_model` itself does for
a list of images.

Channel rule: the infer stage's images are RGB; mmseg's are BGR (`mmcv.imread`'s order, which
`inference_model` assumes for arrays too). The host transform reverses the channels before the
pipeline, so an image predicts what `inference_model(model, path)` and
`inference_model(model, rgb[..., ::-1])` predict; the config's `data_preprocessor.bgr_to_rgb`
then decides what the network sees, as in mmseg.

Weights are loaded strictly (`init_model` only warns about keys that do not fit) and with
`weights_only=True`, as every backend of this project.
"""

import copy
import math
import re
from pathlib import Path

import numpy as np
import torch

from ..errors import SegsubmitError
from .base import Predictor, autocast_context, check_class_count
from .mmseg_backend import INSTALL_HINT

CONFIG_KEY = "model.mmseg.config_file"
SHOWN_KEYS = 3  # keys named per kind of problem in a weights error


def first_line(err, limit=200):
    text = str(err).strip()
    return (text.splitlines()[0] if text else type(err).__name__)[:limit]


def require_mmseg():
    """Import mmseg (with mmcv's compiled ops) or fail with one line saying how to install it."""
    try:
        import mmseg.models  # noqa: F401  (asserts the mmcv version; heads import mmcv.ops)
        from mmcv.ops import point_sample  # noqa: F401
    except (ImportError, AssertionError) as err:
        raise SegsubmitError(
            f"model.backend: mmseg is not usable ({type(err).__name__}: {first_line(err)}); "
            f"{INSTALL_HINT}"
        ) from err


def load_mmseg_config(config_file, cfg_options):
    """The mmengine `Config` of `config_file` with `cfg_options` merged in, checked to describe
    an mmseg segmentor with a test pipeline."""
    if not config_file or not Path(config_file).is_file():
        raise SegsubmitError(
            f"{CONFIG_KEY}: {config_file} not found; point it at the model's MMSegmentation "
            "config .py"
        )
    from mmengine import Config

    try:
        cfg = Config.fromfile(str(config_file))
    except Exception as err:  # mmengine re-raises syntax and import errors of the file
        raise SegsubmitError(
            f"{config_file}: cannot read as an MMSegmentation config "
            f"({type(err).__name__}: {first_line(err)})"
        ) from err
    if cfg_options:
        try:
            cfg.merge_from_dict(dict(cfg_options))
        except Exception as err:
            raise SegsubmitError(
                f"model.mmseg.cfg_options: cannot merge {dict(cfg_options)} into {config_file} "
                f"({type(err).__name__}: {first_line(err)})"
            ) from err
    check_segmentor_config(cfg, config_file)
    return cfg


def check_segmentor_config(cfg, config_file):
    """One line unless `cfg.model` is a registered mmseg segmentor and `cfg.test_pipeline` a
    non-empty list."""
    from mmengine.registry import init_default_scope
    from mmseg.models import BaseSegmentor
    from mmseg.registry import MODELS

    model = cfg.get("model")
    if not isinstance(model, dict) or "type" not in model:
        raise SegsubmitError(
            f"{config_file}: no `model = dict(type=...)`; {CONFIG_KEY} must be an MMSegmentation "
            "model config (as mmseg's training dumps it)"
        )
    init_default_scope(cfg.get("default_scope", "mmseg"))
    model_type = model["type"]
    model_class = MODELS.get(model_type) if isinstance(model_type, str) else model_type
    if not (isinstance(model_class, type) and issubclass(model_class, BaseSegmentor)):
        raise SegsubmitError(
            f"{config_file}: model.type {model_type!r} is not an mmseg segmentor "
            "(EncoderDecoder, CascadeEncoderDecoder, ...); use a semantic-segmentation config"
        )
    pipeline = cfg.get("test_pipeline")
    if not isinstance(pipeline, list | tuple) or not pipeline:
        raise SegsubmitError(
            f"{config_file}: no test_pipeline; the mmseg backend runs the config's own "
            "test_pipeline (e.g. [LoadImageFromFile, Resize, PackSegInputs])"
        )


def without_annotations(transforms):
    """`transforms` (plain dicts) without `LoadAnnotations`, also inside `TestTimeAug`'s lists
    (a list left empty is dropped: `TestTimeAug` multiplies its lists)."""
    kept = []
    for transform in transforms:
        if transform.get("type") == "LoadAnnotations":
            continue
        if transform.get("type") == "TestTimeAug":
            lists = [without_annotations(choices) for choices in transform["transforms"]]
            transform = {**transform, "transforms": [choices for choices in lists if choices]}
        kept.append(dict(transform))
    return kept


def inference_pipeline(cfg, key="test_pipeline"):
    """`cfg[key]` (the test or TTA pipeline) as `inference_model` runs a pipeline on arrays
    (plain dicts): `LoadImageFromNDArray` first, `LoadAnnotations` dropped."""
    pipeline = without_annotations(copy.deepcopy(cfg.to_dict()[key]))
    pipeline[0]["type"] = "LoadImageFromNDArray"
    return pipeline


class MMSegTestPipeline:
    """The host transform: a decoded uint8 RGB image (3, H, W) -> the BGR uint8 (3, h, w) tensor
    the config's test pipeline makes of it (`PackSegInputs`' `inputs`); with `tta`, the config's
    `tta_pipeline` (`TestTimeAug`: one packed image per view) instead, its views flattened and
    concatenated into one 1-D uint8 tensor (the views' shapes depend on the image size only, so
    images of one size stack). Picklable; the pipeline is built in the process that first uses
    it."""

    def __init__(self, pipeline, default_scope="mmseg", tta=False):
        self.pipeline = pipeline
        self.default_scope = default_scope
        self.tta = tta
        self.composed = None

    @classmethod
    def from_config(cls, cfg, tta=False):
        key = "tta_pipeline" if tta else "test_pipeline"
        return cls(inference_pipeline(cfg, key), cfg.get("default_scope", "mmseg"), tta)

    def __getstate__(self):
        return {**self.__dict__, "composed": None}

    def run(self, bgr):
        """The pipeline's packed result for an HWC BGR uint8 array."""
        if self.composed is None:
            import mmseg.datasets  # noqa: F401  (registers mmseg's transforms)
            from mmengine.dataset import Compose
            from mmengine.registry import init_default_scope

            init_default_scope(self.default_scope)
            self.composed = Compose(copy.deepcopy(self.pipeline))
        return self.composed(dict(img=bgr))

    def __call__(self, image):
        bgr = image.permute(1, 2, 0).numpy()[:, :, ::-1]
        inputs = self.run(bgr)["inputs"]
        return torch.cat([view.flatten() for view in inputs]) if self.tta else inputs

    def views(self, height, width):
        """[(shape of `inputs`, dtype, data sample metainfo)] the pipeline gives an image of
        this size: one per view (one without `tta`)."""
        packed = self.run(np.zeros((height, width, 3), np.uint8))
        inputs, samples = packed["inputs"], packed["data_samples"]
        if not self.tta:
            inputs, samples = [inputs], [samples]
        return [
            (tuple(view.shape), view.dtype, sample.metainfo)
            for view, sample in zip(inputs, samples, strict=True)
        ]


def checkpoint_state_dict(weights_path):
    """The state dict of an mmseg checkpoint (`{"state_dict": ..., "meta": ...}`, or a bare state
    dict), `module.` prefixes removed as mmengine's `load_checkpoint` does."""
    if not Path(weights_path).is_file():
        raise SegsubmitError(f"{weights_path}: weights file not found (model.weights)")
    try:
        checkpoint = torch.load(weights_path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for unreadable or pickled files
        raise SegsubmitError(
            f"{weights_path}: cannot load as a weights-only checkpoint ({type(err).__name__}); "
            'for a file you trust, keep only its weights: `python -c "import torch; c = '
            f"torch.load('{weights_path}', weights_only=False); torch.save({{'state_dict': "
            "c['state_dict']}, 'weights.pth')\"`"
        ) from err
    if isinstance(checkpoint, dict) and isinstance(checkpoint.get("state_dict"), dict):
        checkpoint = checkpoint["state_dict"]
    if not isinstance(checkpoint, dict) or not all(
        isinstance(value, torch.Tensor) for value in checkpoint.values()
    ):
        raise SegsubmitError(
            f"{weights_path}: not an mmseg checkpoint (expected {{'state_dict': {{name: "
            "tensor}}, 'meta': ...}} as mmseg's training saves it)"
        )
    return {re.sub(r"^module\.", "", key): value for key, value in checkpoint.items()}


def shown(keys):
    more = f" (+{len(keys) - SHOWN_KEYS} more)" if len(keys) > SHOWN_KEYS else ""
    return ", ".join(keys[:SHOWN_KEYS]) + more


def load_mmseg_weights(model, weights_path, config_file):
    """Load a checkpoint strictly; one line naming the first keys that do not fit."""
    state = checkpoint_state_dict(weights_path)
    own = model.state_dict()
    missing = [key for key in own if key not in state]
    unexpected = [key for key in state if key not in own]
    reshaped = [
        f"{key} {tuple(state[key].shape)} vs model {tuple(value.shape)}"
        for key, value in own.items()
        if key in state and state[key].shape != value.shape
    ]
    if missing or unexpected or reshaped:
        problems = [
            f"{label} {shown(keys)}"
            for label, keys in (
                ("missing:", missing),
                ("unexpected:", unexpected),
                ("other shape:", reshaped),
            )
            if keys
        ]
        raise SegsubmitError(
            f"{weights_path}: weights do not fit the model of {config_file} "
            f"({len(missing)} missing, {len(unexpected)} unexpected, {len(reshaped)} of "
            f"another shape; {'; '.join(problems)})"
        )
    model.load_state_dict(state, strict=True)


class MMSegPredictor(Predictor):
    """An mmseg segmentor fed batches of one original size, as `inference_model` feeds it a
    list: each image's pipeline output (from the host transform) on the device -> the model's
    `data_preprocessor` -> `model(..., mode="predict")` -> `pred_sem_seg` at the original size.

    With `model.mmseg.tta` each view of the config's `tta_pipeline` goes through that path as
    one batch (what `SegTTAModel.test_step` does per view, `postprocess_result` un-flipping and
    resizing each view's logits to the original size), then the views are merged as
    `SegTTAModel.merge_preds` merges them: the mean of their softmax, argmax.

    The data samples carry the metainfo the pipeline gives an image of that size (computed once
    per size on a blank image: a test pipeline's output shape and metainfo depend on the size
    only)."""

    # what the refusal of infer.tta (segsubmit.tta) suggests instead
    tta_instead = "; model.mmseg.tta: true runs the config's own tta_pipeline (MMSeg's --tta)"

    def __init__(self, model, pipeline, settings, device):
        super().__init__(device, settings.num_classes, settings.precision, settings.weights)
        self.model = model
        self.pipeline = pipeline
        self.config_file = settings.options["config_file"]
        self.channels_last = settings.channels_last
        self.metainfos = {}

    def size_views(self, size):
        """[(shape, metainfo)] of each view of an image of `size`, checked once per size."""
        if size not in self.metainfos:
            views = self.pipeline.views(*size)
            if any(dtype != torch.uint8 for _, dtype, _ in views):
                raise SegsubmitError(
                    f"{self.config_file}: its pipeline makes {views[0][1]} images; the mmseg "
                    "backend takes uint8 ones (drop to_float32 from the loading transform)"
                )
            if not self.pipeline.tta and views[0][2].get("flip"):
                raise SegsubmitError(
                    f"{self.config_file}: test_pipeline flips images; for test-time "
                    "augmentation set model.mmseg.tta: true (the config's tta_pipeline)"
                )
            self.metainfos[size] = [(shape, metainfo) for shape, _, metainfo in views]
        return self.metainfos[size]

    def view_batches(self, prepared, size):
        """[(images (N, 3, h, w), metainfo)] of each view of a batch (one without TTA)."""
        views = self.size_views(tuple(size))
        if self.pipeline.tta:
            expected = (sum(math.prod(shape) for shape, _ in views),)
        else:
            expected = views[0][0]
        if tuple(prepared.shape[1:]) != expected:
            raise SegsubmitError(
                f"{self.config_file}: its pipeline made a {tuple(prepared.shape[1:])} input of a "
                f"{size[1]}x{size[0]} image, {expected} of another; its transforms must depend "
                "on the image size only (no random resizes)"
            )
        if not self.pipeline.tta:
            return [(prepared, views[0][1])]
        batches, start = [], 0
        for shape, metainfo in views:
            count = math.prod(shape)
            images = prepared[:, start : start + count].reshape(len(prepared), *shape)
            batches.append((images, metainfo))
            start += count
        return batches

    @torch.inference_mode()
    def view_results(self, images, metainfo):
        """The model's `SegDataSample`s (`pred_sem_seg`, `seg_logits` at the original size) of
        one view of a batch."""
        from mmseg.structures import SegDataSample

        samples = [SegDataSample(metainfo=dict(metainfo)) for _ in range(len(images))]
        data = self.model.data_preprocessor({"inputs": list(images), "data_samples": samples})
        if self.channels_last:
            data["inputs"] = data["inputs"].contiguous(memory_format=torch.channels_last)
        with autocast_context(self.device, self.precision):
            return self.model(**data, mode="predict")

    def count_nonfinite(self, scores):
        self.nonfinite = self.nonfinite + (~torch.isfinite(scores)).flatten(1).any(1).sum()

    @torch.inference_mode()
    def merged_views(self, prepared, size):
        """(labels, mean softmax over the views) as `SegTTAModel.merge_preds` computes them."""
        total, views = None, self.view_batches(prepared, size)
        for images, metainfo in views:
            results = self.view_results(images, metainfo)
            logits = torch.stack([result.seg_logits.data for result in results])
            total = logits.softmax(dim=1) if total is None else total + logits.softmax(dim=1)
        probabilities = total / len(views)
        self.count_nonfinite(probabilities)
        return probabilities.argmax(dim=1).to(torch.uint8), probabilities.float()

    def plain_outputs(self, prepared, size):
        """(mmseg's own labels, its `seg_logits`) of a batch without TTA."""
        ((images, metainfo),) = self.view_batches(prepared, size)
        results = self.view_results(images, metainfo)
        logits = torch.stack([result.seg_logits.data for result in results])
        self.count_nonfinite(logits)
        labels = torch.stack([result.pred_sem_seg.data[0] for result in results])
        return labels.to(torch.uint8), logits

    @torch.inference_mode()
    def predict_prepared(self, prepared, size):
        if self.pipeline.tta:
            return self.merged_views(prepared, size)[0]
        return self.plain_outputs(prepared, size)[0]

    @torch.inference_mode()
    def labels_and_probabilities(self, prepared, size):
        """mmseg's own labels and the softmax of its `seg_logits`; with TTA the merged views."""
        if self.pipeline.tta:
            return self.merged_views(prepared, size)
        labels, logits = self.plain_outputs(prepared, size)
        return labels, logits.float().softmax(dim=1)


def settings_pipeline(settings):
    """(the checked config, its `MMSegTestPipeline`: the test pipeline, or with
    `model.mmseg.tta` the `tta_pipeline`) of the backend's settings."""
    options = settings.options
    cfg = load_mmseg_config(options["config_file"], options.get("cfg_options"))
    tta = bool(options.get("tta"))
    if tta:
        check_tta_pipeline(cfg, options["config_file"])
    return cfg, MMSegTestPipeline.from_config(cfg, tta)


def check_tta_pipeline(cfg, config_file):
    """One line unless `cfg.tta_pipeline` is a list ending in a `TestTimeAug`, as
    `tools/test.py --tta` needs it."""
    pipeline = cfg.get("tta_pipeline")
    if not isinstance(pipeline, list | tuple) or not any(
        isinstance(transform, dict) and transform.get("type") == "TestTimeAug"
        for transform in pipeline
    ):
        raise SegsubmitError(
            f"model.mmseg.tta: {config_file} has no tta_pipeline with a TestTimeAug (as mmseg's "
            "configs/_base_/datasets/*.py define it); add one or set model.mmseg.tta: false"
        )


def mmseg_host_transform(settings):
    """The config's test (or TTA) pipeline, run in the DataLoader workers on every device."""
    require_mmseg()
    return settings_pipeline(settings)[1]


def load_mmseg(settings, device):
    """Predictor for an mmseg config + checkpoint: built by `mmseg.apis.init_model`, the class
    count checked against `classes`, the weights loaded strictly."""
    require_mmseg()
    from mmseg.apis import init_model

    config_file = settings.options["config_file"]
    cfg, pipeline = settings_pipeline(settings)
    try:
        model = init_model(cfg, None, device="cpu")
    except Exception as err:  # the registry raises KeyError, TypeError, ... for bad configs
        raise SegsubmitError(
            f"{config_file}: cannot build its model ({type(err).__name__}: {first_line(err)})"
        ) from err
    found = getattr(model, "num_classes", None)
    check_class_count(f"{config_file} (decode_head num_classes)", found, settings.num_classes)
    load_mmseg_weights(model, settings.weights, config_file)
    model = model.to(device).eval()
    if settings.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return MMSegPredictor(model, pipeline, settings, device)
