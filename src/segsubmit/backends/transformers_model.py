"""The transformers backend's implementation: the model and image processor of a local
`save_pretrained` folder, predicting exactly what the processor's own pipeline predicts,
`processor(images, return_tensors="pt")` -> `model(**inputs)` ->
`processor.post_process_semantic_segmentation(outputs, target_sizes=[(h, w)] * n)`, batched
over images of one size (the infer stage buckets them).

Preprocessing: the processor resizes uint8 tensors with `torchvision...resize(antialias=True)`.
On the CPU that is torch's integer kernel (int16 weights at a per-axis precision, horizontal pass
first, rounded to uint8 between passes); on CUDA it computes in float instead, which changed
14-20 % of pixel values by one level (measured on an H200, transformers 5.17, torchvision 0.26,
48x64 ... 1024x768 -> 512x512; equal only when the size is unchanged). `cpu_bilinear_resize`
below is that CPU kernel as torch ops on any device: on the H200 its CUDA run equalled the CPU
kernel on 34 of 34 size pairs (up, down, mixed), and with the processor's own
`rescale_and_normalize` gave pixel_values equal to the processor's CPU call for 48x64, 300x401,
1024x768 and 512x512 inputs (an inlined copy of this code, same session).
So for processors that only resize bilinearly to a fixed size, rescale and normalise
(SegFormer's and those built on it, as UperNet checkpoints use) the batch is prepared on the
device: `cpu_bilinear_resize` + the processor's own `rescale_and_normalize`. Any other processor
(shortest-edge resizing and padding for Mask2Former, centre crops, ...) runs itself, on the CPU,
on the batch: the reference pipeline by construction.

The labels come from the processor's own `post_process_semantic_segmentation`: SegFormer/UperNet
logits resized bilinearly to the image then argmax; Mask2Former/MaskFormer class and mask
queries combined as the library does (masks resized to 384x384, softmax x sigmoid summed over
queries, resized to the image, argmax). Class probabilities (ensembles, probability outputs)
are the scores that same call computes (`return_segmentation_scores=True`): softmax of the
upsampled logits; for mask queries the upsampled class x mask scores divided by their per-pixel
sum. OneFormer (its text task inputs need a tokenizer) is refused.
"""

import functools

import torch

from ..errors import SegsubmitError
from .base import Predictor, autocast_context, check_class_count, check_logits
from .transformers_backend import INSTALL_HINT

BILINEAR = 2  # PILImageResampling.BILINEAR
UNSUPPORTED = {"oneformer": "its text task inputs need the tokenizer (OneFormerProcessor)"}


def axis_weights(in_size, out_size):
    """(first source index per output index, int16-range weights padded to one length,
    precision bits) as torch's CPU uint8 antialiased bilinear kernel computes them
    (`_compute_index_ranges_int16_weights`): double weights normalised per output index, the
    precision the largest weight allows in 15 bits, rounded half away from zero."""
    scale = in_size / out_size
    support = max(scale, 1.0)
    inverse = 1.0 / support
    starts, rows = [], []
    for index in range(out_size):
        center = scale * (index + 0.5)
        first = max(int(center - support + 0.5), 0)
        count = min(int(center + support + 0.5), in_size) - first
        row = [max(0.0, 1.0 - abs((tap + first - center + 0.5) * inverse)) for tap in range(count)]
        total = sum(row)
        starts.append(first)
        rows.append([value / total if total != 0 else 0.0 for value in row])
    largest = max(max(row) for row in rows)
    precision = 0
    while precision < 21 and int(0.5 + largest * (1 << (precision + 1))) < (1 << 15):
        precision += 1
    width = max(len(row) for row in rows)
    fixed = [
        [int(v * (1 << precision) + (0.5 if v >= 0 else -0.5)) for v in row]
        + [0] * (width - len(row))
        for row in rows
    ]
    return starts, fixed, precision


@functools.lru_cache(maxsize=64)
def device_axis_weights(in_size, out_size, device):
    """`axis_weights` as per-tap index and weight tensors on `device`, made once per size."""
    starts, fixed, precision = axis_weights(in_size, out_size)
    starts = torch.tensor(starts)
    weights = torch.tensor(fixed, dtype=torch.int32)
    taps = range(weights.shape[1])
    indices = [(starts + tap).clamp_(max=in_size - 1).to(device) for tap in taps]
    return indices, [weights[:, tap].contiguous().to(device) for tap in taps], precision


def resize_axis(images, out_size, dim):
    """One pass of the kernel along `dim`: fixed-point weighted sum, round, clip to uint8."""
    indices, weights, precision = device_axis_weights(images.shape[dim], out_size, images.device)
    shape = [1] * images.dim()
    shape[dim] = out_size
    source = images.to(torch.int32)
    total = 1 << (precision - 1)
    for index, weight in zip(indices, weights, strict=True):
        total = total + source.index_select(dim, index) * weight.view(shape)
    return (total >> precision).clamp_(0, 255).to(torch.uint8)


def cpu_bilinear_resize(images, height, width):
    """uint8 (..., H, W) -> (..., height, width) equal to torch's CPU
    `interpolate(uint8, mode="bilinear", antialias=True)` (what torchvision's resize of a uint8
    CPU tensor runs), on any device: the width first, then the height."""
    if images.shape[-1] != width:
        images = resize_axis(images, width, images.dim() - 1)
    if images.shape[-2] != height:
        images = resize_axis(images, height, images.dim() - 2)
    return images


def require_transformers():
    """transformers, or one line saying how to install it."""
    try:
        import transformers
    except ImportError as err:
        raise SegsubmitError(
            f"model.backend: transformers is not installed; {INSTALL_HINT}"
        ) from err
    return transformers


def first_line(err):
    text = str(err).strip()
    return text.splitlines()[0][:200] if text else ""


def load_model_and_processor(folder):
    """(model, image processor) from a local folder, offline; one line when it holds neither a
    semantic nor a universal segmentation model."""
    transformers = require_transformers()
    try:
        config = transformers.AutoConfig.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError) as err:
        raise SegsubmitError(
            f"{folder}: not a transformers save_pretrained folder ({first_line(err)}); "
            "model.weights must name the folder holding config.json"
        ) from err
    if config.model_type in UNSUPPORTED:
        raise SegsubmitError(
            f"{folder}: {config.model_type} models are not supported ("
            f"{UNSUPPORTED[config.model_type]}); use a SegFormer/UperNet/Mask2Former model"
        )
    model = None
    for auto in (
        transformers.AutoModelForSemanticSegmentation,
        transformers.AutoModelForUniversalSegmentation,
    ):
        if type(config) in auto._model_mapping:
            model = auto.from_pretrained(folder, local_files_only=True)
            break
    if model is None:
        raise SegsubmitError(
            f"{folder}: {config.model_type} ({', '.join(config.architectures or [])}) is not "
            "a semantic or universal segmentation model"
        )
    try:
        processor = transformers.AutoImageProcessor.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError) as err:
        raise SegsubmitError(
            f"{folder}: no image processor ({first_line(err)}); save it beside the model with "
            "processor.save_pretrained(folder)"
        ) from err
    if not hasattr(processor, "post_process_semantic_segmentation"):
        raise SegsubmitError(
            f"{folder}: {type(processor).__name__} has no post_process_semantic_segmentation"
        )
    return model, processor


def device_resize_size(processor):
    """(height, width) when the processor only resizes bilinearly to a fixed size (or not at
    all: None), then rescales and normalises, the SegFormer way; False when it does anything
    else (then it runs itself on the CPU)."""
    from transformers.models.segformer.image_processing_segformer import SegformerImageProcessor

    if getattr(type(processor), "_preprocess", None) is not SegformerImageProcessor._preprocess:
        return False
    if getattr(processor, "do_center_crop", None) or getattr(processor, "do_pad", None):
        return False
    if not processor.do_resize:
        return None
    size = processor.size
    height, width = getattr(size, "height", None), getattr(size, "width", None)
    resample = processor.resample
    bilinear = resample == BILINEAR or getattr(resample, "value", None) in (BILINEAR, "bilinear")
    if not height or not width or not bilinear:
        return False
    return int(height), int(width)


class TransformersPredictor(Predictor):
    """A transformers segmentation model behind its image processor."""

    def __init__(self, model, processor, settings, device):
        super().__init__(device, settings.num_classes, settings.precision, settings.weights)
        memory_format = torch.channels_last if settings.channels_last else torch.contiguous_format
        self.model = model.eval().to(device, memory_format=memory_format)
        self.processor = processor
        self.resize_to = device_resize_size(processor)
        self.on_device = self.resize_to is not False

    def model_input(self, batch):
        """RGB uint8 images (N, 3, H, W) on the device -> the processor's model inputs."""
        if self.on_device:
            if self.resize_to is not None and tuple(batch.shape[-2:]) != self.resize_to:
                batch = cpu_bilinear_resize(batch, *self.resize_to)
            p = self.processor
            pixel_values = p.rescale_and_normalize(
                batch,
                p.do_rescale,
                p.rescale_factor,
                p.do_normalize,
                tuple(p.image_mean) if isinstance(p.image_mean, list) else p.image_mean,
                tuple(p.image_std) if isinstance(p.image_std, list) else p.image_std,
            )
            return {"pixel_values": pixel_values}
        inputs = self.processor(
            list(batch.cpu()), return_tensors="pt", input_data_format="channels_first"
        )
        return {key: value.to(self.device) for key, value in inputs.items()}

    def check_outputs(self, outputs, batch_size):
        """One line when the outputs are not per-class logits / class queries for the
        configured classes; the tensor whose finiteness is counted."""
        logits = getattr(outputs, "logits", None)
        if isinstance(logits, torch.Tensor):
            check_logits(logits, batch_size, self.num_classes, self.source)
            return logits
        queries = getattr(outputs, "class_queries_logits", None)
        if isinstance(queries, torch.Tensor) and queries.ndim == 3:
            check_class_count(self.source, queries.shape[-1] - 1, self.num_classes)
            return queries
        raise SegsubmitError(
            f"{self.source}: {type(self.model).__name__} returns {type(outputs).__name__} "
            "without logits or class_queries_logits"
        )

    def post_processed(self, prepared, size, scores=False):
        """The processor's own `post_process_semantic_segmentation` of the model's outputs at
        `size` (with `return_segmentation_scores` when `scores`), and whether the outputs are
        mask queries (Mask2Former/MaskFormer) rather than per-class logits."""
        with autocast_context(self.device, self.precision):
            outputs = self.model(**prepared)
        batch_size = len(next(iter(prepared.values())))
        checked = self.check_outputs(outputs, batch_size)
        self.nonfinite = self.nonfinite + (~torch.isfinite(checked)).flatten(1).any(1).sum()
        processed = self.processor.post_process_semantic_segmentation(
            outputs, target_sizes=[tuple(size)] * batch_size, return_segmentation_scores=scores
        )
        return processed, not isinstance(getattr(outputs, "logits", None), torch.Tensor)

    @torch.inference_mode()
    def predict_prepared(self, prepared, size):
        maps, _ = self.post_processed(prepared, size)
        return torch.stack(maps).to(torch.uint8)

    @torch.inference_mode()
    def labels_and_probabilities(self, prepared, size):
        """The processor's own labels and its `segmentation_scores` (the logits, or for mask
        queries the class x mask probabilities summed over queries, as it upsamples them to
        `size`) made probabilities: softmax of logits; mask-query scores divided by their sum
        over the classes (they are positive but do not sum to 1)."""
        processed, queries = self.post_processed(prepared, size, scores=True)
        labels = torch.stack([item.segmentation for item in processed]).to(torch.uint8)
        scores = torch.stack([item.segmentation_scores for item in processed]).float()
        if queries:
            return labels, scores / scores.sum(dim=1, keepdim=True)
        return labels, scores.softmax(dim=1)


def load_transformers(settings, device):
    """Predictor for the save_pretrained folder `settings.weights`."""
    model, processor = load_model_and_processor(settings.weights)
    check_class_count(settings.weights, model.config.num_labels, settings.num_classes)
    return TransformersPredictor(model, processor, settings, device)
