"""What every backend shares: settings, device choice, precision, the predictor interface and
the registry of backends (name -> `Backend` class)."""

import contextlib
from dataclasses import dataclass

import torch

from ..errors import SegsubmitError

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class PredictorSettings:
    """Everything a backend needs to build its model, from the validated `model:` and `infer:`
    config (`segsubmit.testing.predictor_settings` fills the schema's defaults)."""

    weights: str
    num_classes: int
    device: str
    architecture: str
    config_file: str
    opts: tuple
    mean: tuple
    std: tuple
    precision: str
    channels_last: bool


def resolve_device(name):
    """'auto' -> CUDA when available, else CPU; an explicit CUDA device must exist."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SegsubmitError(f"model.device: {name!r} asked for, but CUDA is not available")
    return device


def autocast_context(device, precision):
    """Autocast for bf16/fp16, nothing for fp32."""
    dtype = PRECISIONS[precision]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def load_state_dict(weights_path):
    """A state dict from a checkpoint file, loaded with `weights_only=True` (no pickled code)."""
    try:
        checkpoint = torch.load(weights_path, map_location="cpu", weights_only=True)
    except FileNotFoundError as err:
        raise SegsubmitError(f"{weights_path}: weights file not found (model.weights)") from err
    except Exception as err:  # torch raises several types for unreadable files
        raise SegsubmitError(
            f"{weights_path}: cannot load as a weights-only checkpoint ({type(err).__name__}); "
            "save it with torch.save(model.state_dict(), path)"
        ) from err
    if isinstance(checkpoint, dict) and isinstance(checkpoint.get("model"), dict):
        checkpoint = checkpoint["model"]
    if not isinstance(checkpoint, dict):
        raise SegsubmitError(f"{weights_path}: expected a state dict, got {type(checkpoint)}")
    return checkpoint


class Predictor:
    """What a backend's model does in the infer stage.

    - `model_input(batch)`: the stacked images as the DataLoader delivers them (after the
      backend's host transform, if any), moved to `device` -> what the model is fed; the place
      for preprocessing that is faster on the device (default: unchanged).
    - `predict_prepared(prepared, size)`: model-ready images -> uint8 argmax labels (N, H, W)
      at the original `size` (H, W), on the device. `predict` chains the two.

    This base class implements `predict_prepared` for models that output logits: subclasses
    implement `logits(batch)` -> float (N, C, h, w); logits are resized bilinearly to `size` if
    needed.
    """

    def __init__(self, device, num_classes, precision):
        self.device = device
        self.num_classes = num_classes
        self.precision = precision

    def logits(self, batch):
        raise NotImplementedError

    def model_input(self, batch):
        return batch

    @torch.inference_mode()
    def predict_prepared(self, prepared, size):
        """Argmax labels at `size`, uint8, on the device."""
        with autocast_context(self.device, self.precision):
            scores = self.logits(prepared)
        if tuple(scores.shape[-2:]) != tuple(size):
            scores = torch.nn.functional.interpolate(
                scores.float(), size=tuple(size), mode="bilinear", align_corners=False
            )
        return scores.argmax(dim=1).to(torch.uint8)

    @torch.inference_mode()
    def predict(self, batch, size):
        """uint8 images as the DataLoader delivers them -> argmax labels at `size`."""
        return self.predict_prepared(self.model_input(batch), size)


class NormalizedModelPredictor(Predictor):
    """A torch module fed images scaled to [0, 1] and normalized by mean/std on the device."""

    def __init__(self, module, settings, device):
        super().__init__(device, settings.num_classes, settings.precision)
        self.channels_last = settings.channels_last
        memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        self.module = module.eval().to(device, memory_format=memory_format)
        self.mean = torch.tensor(settings.mean, device=device).view(1, 3, 1, 1) * 255
        self.std = torch.tensor(settings.std, device=device).view(1, 3, 1, 1) * 255

    def logits(self, images):
        batch = (images.float() - self.mean) / self.std
        if self.channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        output = self.module(batch)
        return output["out"] if isinstance(output, dict) else output


def check_class_count(source, found, expected):
    """One-line error when a model's class count differs from the configured classes."""
    if found != expected:
        raise SegsubmitError(
            f"{source}: model predicts {found} classes but config `classes` lists {expected}; "
            "use the matching weights or classes"
        )


BACKENDS = {}


def register_backend(name):
    """Class decorator: make a `Backend` subclass available as `model.backend: name`."""

    def register(backend_class):
        BACKENDS[name] = backend_class
        return backend_class

    return register


class Backend:
    """A model backend: how to build its `Predictor`, and what DataLoader workers do to each
    decoded image before batching (its host transform)."""

    @staticmethod
    def host_transform(settings, device):
        """None, or a picklable callable run in the DataLoader workers on each decoded uint8 RGB
        image (3, H, W), returning the uint8 tensor `Predictor.model_input` expects. Images of
        one original size must come out with one shape (batches are bucketed by original size).
        Known from the settings alone, so workers can decode while the model loads."""
        return None

    @staticmethod
    def load(settings, device):
        """The backend's `Predictor` on `device`."""
        raise NotImplementedError
