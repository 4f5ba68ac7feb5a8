"""The detectron2 backend's implementation, predicting exactly what
`DefaultPredictor` would: same channel order, same `ResizeShortestEdge` (Pillow BILINEAR: with
Pillow itself in the DataLoader workers on the CPU; on a GPU with `pil_bilinear_resize`, which
gives the same pixels), same `{"image", "height", "width"}` inputs, `sem_seg` logits resized
back to the original size by the model, argmax.

Batches hold images of one original size only (the infer stage buckets them), so they share one
resized shape and Detectron2 pads none of them more than it would pad one image alone.
"""

from pathlib import Path

import numpy as np
import torch

from ..errors import SegsubmitError
from ..pil_resize import pil_bilinear_resize
from .base import Predictor, autocast_context, check_logits
from .detectron2_backend import INSTALL_HINT


def require_detectron2():
    """Import detectron2 or fail with one line saying how to install it."""
    try:
        import detectron2  # noqa: F401
    except ImportError as err:
        raise SegsubmitError(f"model.backend: detectron2 is not installed; {INSTALL_HINT}") from err


def load_config(config_file, opts, device):
    """Frozen yacs config: file, then `opts` overrides, then the device."""
    from detectron2.config import get_cfg

    if Path(config_file).suffix == ".py":
        raise SegsubmitError(
            f"{config_file}: LazyConfig (.py) models are not supported; export a yacs config.yaml"
        )
    cfg = get_cfg()
    cfg.set_new_allowed(True)  # project configs (DeepLab, PointRend) add their own keys
    try:
        cfg.merge_from_file(str(config_file))
        cfg.merge_from_list([str(item) for item in opts])
    except (KeyError, ValueError, AssertionError) as err:
        raise SegsubmitError(
            f"{config_file}: cannot use this config with opts {opts} ({err})"
        ) from err
    cfg.MODEL.DEVICE = str(device)
    cfg.freeze()
    return cfg


class CaptureIncompatibleKeys:
    """Mixed into DetectionCheckpointer: keep the keys that did not fit instead of only logging."""

    incompatible = None

    def _log_incompatible_keys(self, incompatible):
        super()._log_incompatible_keys(incompatible)
        self.incompatible = incompatible


def load_weights(model, weights_path):
    """Load a checkpoint the Detectron2 way; refuse files that leave weights missing or misfit."""
    from detectron2.checkpoint import DetectionCheckpointer

    if not Path(weights_path).is_file():
        raise SegsubmitError(f"{weights_path}: weights file not found (model.weights)")
    checkpointer_class = type("Checkpointer", (CaptureIncompatibleKeys, DetectionCheckpointer), {})
    checkpointer = checkpointer_class(model)
    checkpointer.load(str(weights_path))
    incompatible = checkpointer.incompatible
    if incompatible and (incompatible.missing_keys or incompatible.incorrect_shapes):
        problems = [
            f"{key}: checkpoint {theirs} vs model {ours}"
            for key, theirs, ours in incompatible.incorrect_shapes
        ]
        problems += [f"missing {k}" for k in incompatible.missing_keys]
        raise SegsubmitError(
            f"{weights_path}: weights do not fit the model of model.config_file "
            f"({len(problems)} problems, first: {problems[0]})"
        )


def resized_shape(height, width, min_size, max_size):
    """The (height, width) DefaultPredictor's test-time `ResizeShortestEdge` resizes to."""
    from detectron2.data.transforms import ResizeShortestEdge

    if min_size == 0:  # detectron2's "no resize"
        return height, width
    return ResizeShortestEdge.get_output_shape(height, width, min_size, max_size)


class DefaultPredictorPreprocess:
    """What `DefaultPredictor.__call__` does to an image before the model, for RGB uint8
    (3, H, W) input: `INPUT.FORMAT` channel order, then its test-time `ResizeShortestEdge`."""

    def __init__(self, input_format, min_size, max_size):
        from detectron2.data import transforms  # imported here, before workers fork

        self.input_format = input_format
        self.resize = transforms.ResizeShortestEdge([min_size] * 2, max_size)

    def __call__(self, image):
        array = image.permute(1, 2, 0).numpy()
        if self.input_format == "BGR":
            array = array[:, :, ::-1]
        resized = self.resize.get_transform(array).apply_image(np.ascontiguousarray(array))
        return torch.from_numpy(np.ascontiguousarray(resized.transpose(2, 0, 1)))


def preprocesses_on_host(device):
    """DefaultPredictor's preprocessing runs in the DataLoader workers (Pillow) on the CPU, on
    the device (`pil_bilinear_resize`, same pixels) otherwise."""
    return device.type == "cpu"


class Detectron2Predictor(Predictor):
    """A Detectron2 model whose outputs carry `sem_seg` logits.

    On the CPU the backend's host transform (Pillow, in the DataLoader workers) does
    DefaultPredictor's channel order and resize; on a GPU the workers only decode and
    `model_input` does both on the device with identical pixels (Pillow's resize was the host's
    bottleneck: ~16 ms an image).
    """

    def __init__(self, model, cfg, settings, device):
        super().__init__(device, settings.num_classes, settings.precision, settings.weights)
        self.model = model
        self.input_format = cfg.INPUT.FORMAT
        self.min_size, self.max_size = cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST
        self.preprocessed_on_host = preprocesses_on_host(device)

    def model_input(self, batch):
        """RGB uint8 images (N, 3, H, W) on the device -> what DefaultPredictor feeds the model
        (unchanged when the host transform already did that in the workers)."""
        if self.preprocessed_on_host:
            return batch
        if self.input_format == "BGR":
            batch = batch.flip(1)
        return pil_bilinear_resize(
            batch, *resized_shape(*batch.shape[-2:], self.min_size, self.max_size)
        )

    @torch.inference_mode()
    def sem_seg_logits(self, prepared, size):
        """(N, C, H, W) logits at the original `size` of model-ready images, as the model
        returns them."""
        inputs = [
            {"image": image.float(), "height": size[0], "width": size[1]} for image in prepared
        ]
        with autocast_context(self.device, self.precision):
            outputs = self.model(inputs)
        if not all("sem_seg" in output for output in outputs):
            raise SegsubmitError(
                f"model.config_file: {type(self.model).__name__} returns "
                f"{sorted(outputs[0])}, not 'sem_seg'; use a semantic-segmentation model"
            )
        logits = torch.stack([output["sem_seg"] for output in outputs])
        check_logits(logits, len(inputs), self.num_classes, self.source)
        return logits

    def predict_prepared(self, prepared, size):
        return self.argmax_labels(self.sem_seg_logits(prepared, size))

    def labels_and_probabilities(self, prepared, size):
        logits = self.sem_seg_logits(prepared, size)
        return self.argmax_labels(logits), logits.float().softmax(dim=1)


def detectron2_host_transform(settings, device):
    """DefaultPredictor's preprocessing on the CPU; nothing on a GPU (detectron2 is then not
    imported before the workers fork)."""
    if not preprocesses_on_host(device):
        return None
    require_detectron2()
    cfg = load_config(settings.options["config_file"], settings.options["opts"], device)
    return DefaultPredictorPreprocess(
        cfg.INPUT.FORMAT, cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST
    )


def load_detectron2(settings, device):
    """Predictor for a Detectron2 config + checkpoint; checks its output before inference."""
    require_detectron2()
    from detectron2.modeling import build_model

    config_file = settings.options["config_file"]
    cfg = load_config(config_file, settings.options["opts"], device)
    with torch.device(device):  # parameters made and randomly initialised on the device (fast),
        model = build_model(cfg).eval()  # then every one is overwritten by the checkpoint
    if settings.channels_last:
        model = model.to(memory_format=torch.channels_last)
    load_weights(model, settings.weights)
    predictor = Detectron2Predictor(model, cfg, settings, device)
    probe = torch.zeros((1, 3, 64, 64), dtype=torch.uint8, device=device)
    try:
        predictor.sem_seg_logits(probe, (64, 64))
    except (RuntimeError, AttributeError, ImportError) as err:
        raise SegsubmitError(
            f"{config_file}: {cfg.MODEL.META_ARCHITECTURE} did not run as a semantic "
            f"segmentation model ({type(err).__name__}: {str(err).splitlines()[0]})"
        ) from err
    return predictor
