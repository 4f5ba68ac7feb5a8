"""What every backend's implementation shares: device choice, precision, checkpoints, the
predictor interface and the check of a model's output (the declarations and their registry
are in `segsubmit.plugins`)."""

import contextlib

import torch

from ..errors import SegsubmitError

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


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


def read_checkpoint(weights_path):
    """A checkpoint file's content, loaded with `weights_only=True` (no pickled code)."""
    try:
        checkpoint = torch.load(weights_path, map_location="cpu", weights_only=True)
    except FileNotFoundError as err:
        raise SegsubmitError(f"{weights_path}: weights file not found (model.weights)") from err
    except Exception as err:  # torch raises several types for unreadable files
        blocked = pickled_globals(weights_path)
        if blocked:  # e.g. Lightning's hyper-parameters (AttributeDict, argparse.Namespace)
            raise SegsubmitError(
                f"{weights_path}: the checkpoint pickles {', '.join(blocked[:3])}"
                f"{' and more' if len(blocked) > 3 else ''}, which a weights-only load refuses; "
                "if you trust the file, keep only the weights: torch.save(torch.load(path, "
                "weights_only=False)['state_dict'], 'model.pt')"
            ) from err
        raise SegsubmitError(
            f"{weights_path}: cannot load as a weights-only checkpoint ({type(err).__name__}); "
            "save it with torch.save(model.state_dict(), path)"
        ) from err
    return checkpoint


def pickled_globals(weights_path):
    """The classes/functions a checkpoint pickles that a weights-only load refuses ([] when
    none, or when the file cannot be read as a torch zip checkpoint)."""
    try:
        return list(torch.serialization.get_unsafe_globals_in_checkpoint(weights_path))
    except Exception:  # not a zip checkpoint, truncated, ...: the generic message applies
        return []


def load_state_dict(weights_path):
    """A state dict from a checkpoint file (`read_checkpoint`); `{"model": state_dict}` too."""
    checkpoint = read_checkpoint(weights_path)
    if isinstance(checkpoint, dict) and isinstance(checkpoint.get("model"), dict):
        checkpoint = checkpoint["model"]
    if not isinstance(checkpoint, dict):
        raise SegsubmitError(f"{weights_path}: expected a state dict, got {type(checkpoint)}")
    return checkpoint


# Where training scripts put the model's state dict inside a checkpoint: Lightning's
# "state_dict", timm/torchvision references' "model", many scripts' "model_state_dict".
CHECKPOINT_CONTAINERS = ("state_dict", "model", "model_state_dict", "net")
# Prefixes that wrappers add to every key: DataParallel/DDP "module.", a LightningModule's
# attribute ("model.", "net."), torch.compile "_orig_mod.".
WRAPPER_PREFIXES = ("module.", "model.", "net.", "_orig_mod.")


def is_state_dict(value):
    """A non-empty {str: tensor} mapping."""
    return (
        isinstance(value, dict)
        and bool(value)
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items())
    )


def unwrap_state_dict(checkpoint, expected_keys, source="model.weights"):
    """The state dict inside a checkpoint as competitors save them, with keys as the model names
    them: a plain state dict, one under a `CHECKPOINT_CONTAINERS` key (nested too), keys under
    `WRAPPER_PREFIXES` (stacked too: Lightning around DataParallel). The prefix chain that makes
    the most keys fit `expected_keys` is stripped (none unless it makes more fit); keys outside
    it (a Lightning module's loss buffers) are not the model's and are dropped."""
    state_dict = checkpoint
    while isinstance(state_dict, dict) and not is_state_dict(state_dict):
        inner = next(
            (state_dict[k] for k in CHECKPOINT_CONTAINERS if isinstance(state_dict.get(k), dict)),
            None,
        )
        if inner is None:
            break
        state_dict = inner
    if not is_state_dict(state_dict):
        keys = sorted(map(str, checkpoint))[:6] if isinstance(checkpoint, dict) else []
        raise SegsubmitError(
            f"{source}: no state dict of tensors found in the checkpoint "
            f"({type(checkpoint).__name__}{' with keys ' + str(keys) if keys else ''}); save "
            "torch.save(model.state_dict(), path)"
        )
    expected = set(expected_keys)
    best, best_fit = "", len(expected & state_dict.keys())
    for prefix in stacked_prefixes():
        fit = sum(1 for k in state_dict if k.startswith(prefix) and k[len(prefix) :] in expected)
        if fit > best_fit:
            best, best_fit = prefix, fit
    if not best:
        return dict(state_dict)
    return {k[len(best) :]: v for k, v in state_dict.items() if k.startswith(best)}


def stacked_prefixes(depth=3):
    """Every chain of up to `depth` `WRAPPER_PREFIXES` ("model.module.", ...), shortest first."""
    chains = [""]
    for _ in range(depth):
        chains += [chain + p for chain in chains if chain.count(".") == _ for p in WRAPPER_PREFIXES]
    return chains[1:]


def key_list(keys, limit=3, width=60):
    """The first `limit` of `keys`, each cut to `width` characters, for a one-line message."""
    shown = [key if len(key) <= width else key[: width - 3] + "..." for key in keys[:limit]]
    return ", ".join(shown) + (", ..." if len(keys) > limit else "")


def state_dict_mismatch(state_dict, model):
    """(missing, unexpected, other_shape) keys of `state_dict` against `model`'s own, in the
    model's order; other_shape: (key, checkpoint shape, model shape)."""
    own = model.state_dict()
    missing = [key for key in own if key not in state_dict]
    unexpected = [str(key) for key in state_dict if key not in own]
    other_shape = [
        (key, tuple(getattr(state_dict[key], "shape", ())), tuple(value.shape))
        for key, value in own.items()
        if key in state_dict and tuple(getattr(state_dict[key], "shape", ())) != tuple(value.shape)
    ]
    return missing, unexpected, other_shape


def mismatch_summary(missing, unexpected, other_shape):
    """One line: how many keys are missing / unexpected / of another shape, the first few."""
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing ({key_list(missing)})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected ({key_list(unexpected)})")
    if other_shape:
        key, theirs, ours = other_shape[0]
        more = f" and {len(other_shape) - 1} more" if len(other_shape) > 1 else ""
        parts.append(
            f"{len(other_shape)} of another shape ({key}: checkpoint {theirs} vs model "
            f"{ours}{more})"
        )
    return "; ".join(parts)


def likely_key_cause(state_dict, expected_keys):
    """What usually makes a checkpoint's keys miss the model's: a training checkpoint holding the
    state dict under a key (Lightning's {"state_dict": ...}), or a wrapper prefix on every key
    ("model.", "module."); '' when neither fits."""
    container = next((k for k in CHECKPOINT_CONTAINERS if isinstance(state_dict.get(k), dict)), "")
    if container:
        inner = likely_key_cause(state_dict[container], expected_keys)
        return (
            f"a training checkpoint with the weights under {container!r} (as Lightning saves "
            f"them); save torch.save(checkpoint[{container!r}], path)"
        ) + (f"; then {inner}" if inner else "")
    expected = set(expected_keys)
    for prefix in stacked_prefixes():
        if sum(1 for k in state_dict if k.startswith(prefix) and k[len(prefix) :] in expected):
            return (
                f"its keys carry a {prefix!r} prefix (a Lightning module's attribute, "
                "DataParallel's 'module.'); strip it from every key before saving"
            )
    return ""


def key_mismatch_line(state_dict, model):
    """One line for a state dict that does not fit `model`: counts and first keys of the missing,
    unexpected and other-shaped ones, and the likely cause when one fits."""
    summary = mismatch_summary(*state_dict_mismatch(state_dict, model))
    cause = likely_key_cause(state_dict, model.state_dict().keys())
    return f"{summary}; likely cause: {cause}" if cause else summary


class Predictor:
    """What a backend's model does in the infer stage.

    - `model_input(batch)`: the stacked images as the DataLoader delivers them (after the
      backend's host transform, if any), moved to `device` -> what the model is fed; the place
      for preprocessing that is faster on the device (default: unchanged).
    - `predict_prepared(prepared, size)`: model-ready images -> uint8 argmax labels (N, H, W)
      at the original `size` (H, W), on the device. `predict` chains the two.

    This base class implements `predict_prepared` for models that output logits: subclasses
    implement `logits(batch)` -> float (N, C, h, w); `scores(prepared, size)` checks them and
    resizes them bilinearly to `size` if needed (what `segsubmit.tta` wraps).

    `nonfinite` counts the images whose logits held NaN or infinity (a device tensor, read once
    per shard: no synchronisation per batch).
    """

    nonfinite = 0
    output_keys = ("out", "logits")  # where a dict output holds the logits (see model_logits)

    def __init__(self, device, num_classes, precision, source="model.weights"):
        self.device = device
        self.num_classes = num_classes
        self.precision = precision
        self.source = source  # what an error about the model's output names

    def logits(self, batch):
        raise NotImplementedError

    def model_input(self, batch):
        return batch

    def scores(self, prepared, size):
        """Checked logits (N, C, H, W) at `size`, resized bilinearly if the model's differ."""
        with autocast_context(self.device, self.precision):
            scores = model_logits(self.logits(prepared), self.output_keys, self.source)
        check_logits(scores, len(prepared), self.num_classes, self.source)
        if tuple(scores.shape[-2:]) != tuple(size):
            scores = torch.nn.functional.interpolate(
                scores.float(), size=tuple(size), mode="bilinear", align_corners=False
            )
        return scores

    @torch.inference_mode()
    def predict_prepared(self, prepared, size):
        """Argmax labels at `size`, uint8, on the device."""
        return self.argmax_labels(self.scores(prepared, size))

    def argmax_labels(self, scores):
        """uint8 argmax of (N, C, H, W) logits, counting images with non-finite logits."""
        self.nonfinite = self.nonfinite + (~torch.isfinite(scores)).flatten(1).any(1).sum()
        return scores.argmax(dim=1).to(torch.uint8)

    @torch.inference_mode()
    def predict(self, batch, size):
        """uint8 images as the DataLoader delivers them -> argmax labels at `size`."""
        return self.predict_prepared(self.model_input(batch), size)

    scores_are_probabilities = False  # `scores` are logits, softmaxed for `probabilities`

    def labels_and_probabilities(self, prepared, size):
        """(uint8 labels, float32 class probabilities (N, C, H, W)) at `size` from one pass, the
        labels equal to `predict_prepared`'s. Backends that post-process their own outputs
        override it, or lack it (`has_probabilities`)."""
        scores = self.scores(prepared, size)
        labels = self.argmax_labels(scores)
        if self.scores_are_probabilities:
            return labels, scores.float()
        return labels, scores.float().softmax(dim=1)

    @torch.inference_mode()
    def predict_probabilities(self, batch, size):
        """`labels_and_probabilities` of uint8 images as the DataLoader delivers them."""
        return self.labels_and_probabilities(self.model_input(batch), size)


class NormalizedModelPredictor(Predictor):
    """A torch module fed images scaled to [0, 1] and normalized by mean/std on the device."""

    def __init__(self, module, settings, device):
        super().__init__(device, settings.num_classes, settings.precision, settings.weights)
        self.channels_last = settings.channels_last
        memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        self.module = module.eval().to(device, memory_format=memory_format)
        self.mean = torch.tensor(settings.mean, device=device).view(1, 3, 1, 1) * 255
        self.std = torch.tensor(settings.std, device=device).view(1, 3, 1, 1) * 255

    def logits(self, images):
        batch = (images.float() - self.mean) / self.std
        if self.channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        return self.module(batch)


def check_class_count(source, found, expected):
    """One-line error when a model's class count differs from the configured classes."""
    if found != expected:
        raise SegsubmitError(
            f"{source}: model predicts {found} classes but config `classes` lists {expected}; "
            "use the matching weights or classes"
        )


def model_logits(output, keys, source):
    """The logits in a model's raw output: a tensor as it is; a dict's first key of `keys`
    (torchvision's "out"); a tuple or list's first element (the main head before auxiliary
    ones); an object's `.logits` (Hugging Face outputs). Anything else: one line naming what
    came back."""
    if isinstance(output, dict):
        for key in keys:
            if key in output:
                return output[key]
        raise SegsubmitError(
            f"{source}: the model returns a dict with keys {sorted(map(str, output))[:8]}, none "
            f"of {list(keys)}; return the logits tensor (N, C, H, W) or put it under "
            f"{keys[0]!r}"
        )
    if isinstance(output, tuple | list):
        if not output:
            raise SegsubmitError(f"{source}: the model returns an empty {type(output).__name__}")
        return model_logits(output[0], keys, source)
    if not isinstance(output, torch.Tensor) and isinstance(
        getattr(output, "logits", None), torch.Tensor
    ):
        return output.logits
    return output


def check_logits(scores, batch_size, num_classes, source):
    """One line when `scores` are not (N, C, H, W) float logits for `num_classes` classes:
    another type, integer label maps, another rank, channels last, another class count."""
    if not isinstance(scores, torch.Tensor):
        raise SegsubmitError(
            f"{source}: the model returns {type(scores).__name__}, not a logits tensor (N, C, H, W)"
        )
    shape = tuple(scores.shape)
    if not scores.is_floating_point():
        raise SegsubmitError(
            f"{source}: the model returns {scores.dtype} values of shape {shape}: label maps, "
            "not per-class logits; return the logits (N, C, H, W) before argmax"
        )
    if scores.ndim != 4 or shape[0] != batch_size:
        raise SegsubmitError(
            f"{source}: the model returns shape {shape} for {batch_size} images; expected "
            f"logits (N={batch_size}, C={num_classes}, H, W)"
        )
    if shape[1] != num_classes and shape[3] == num_classes:
        raise SegsubmitError(
            f"{source}: the model returns shape {shape}: channels last (N, H, W, C); return "
            "(N, C, H, W) logits (e.g. .permute(0, 3, 1, 2))"
        )
    check_class_count(source, shape[1], num_classes)


def probe_predictor(predictor, sizes, transform=None):
    """Run `predictor` once on a zero image of each (height, width) in `sizes` (after the
    backend's host `transform`), so that a model whose output is not usable logits, or that
    fails on one of the sizes, is refused in one line before any image is decoded. The probes
    leave the predictor's count of non-finite outputs as it was."""
    nonfinite = predictor.nonfinite
    for height, width in sizes:
        image = torch.zeros((3, height, width), dtype=torch.uint8)
        batch = (transform(image) if transform else image)[None].to(predictor.device)
        try:
            labels = predictor.predict(batch, (height, width))
        except SegsubmitError:
            raise
        except Exception as err:  # a model's own code may raise anything (TorchScript: jit.Error)
            lines = [line.strip() for line in str(err).splitlines() if line.strip()]
            raise SegsubmitError(
                f"{predictor.source}: the model fails on {width}x{height} images "
                f"({type(err).__name__}: {(lines[-1] if lines else '')[:200]}); check that it "
                "takes this size"
            ) from err
        if tuple(labels.shape) != (1, height, width):
            raise SegsubmitError(
                f"{predictor.source}: the model's maps for {width}x{height} images come out "
                f"{tuple(labels.shape)}"
            )
    predictor.nonfinite = nonfinite


def has_probabilities(predictor):
    """Whether the predictor gives class probabilities: it keeps the base `scores` path, or its
    backend implements `labels_and_probabilities` itself."""
    own = type(predictor)
    return (
        own.predict_prepared is Predictor.predict_prepared
        or own.labels_and_probabilities is not Predictor.labels_and_probabilities
    )


def load_predictor(settings, device=None):
    """The `Predictor` of `settings.backend` (a `settings.ModelSettings`) on `device` (default:
    `resolve_device(settings.device)`)."""
    return settings.declaration.load(settings, device or resolve_device(settings.device))


def host_transform(settings, device):
    """What the backend's DataLoader workers do to each decoded image (see `plugins.Backend`)."""
    return settings.declaration.host_transform(settings, device)
