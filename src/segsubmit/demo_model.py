"""Fit the small demo model (torchvision LR-ASPP MobileNetV3) on the synthetic train split, on
the CPU, deterministically (fixed seed, fixed step count, fixed thread count)."""

import contextlib
import logging

import numpy as np
import torch
from tqdm import tqdm

from .atomic import atomic_path
from .backends.torchvision_model import build_torchvision_model
from .ground_truth import load_ground_truth, rasterize_ground_truth
from .images import decode_rgb

log = logging.getLogger(__name__)

# Threads of the training: fixed, whatever the job got (`--cores 1` lowers the rule's 2), since
# the thread count decides how floating-point sums are split and so the trained weights.
TRAINING_THREADS = 2


@contextlib.contextmanager
def deterministic_torch(threads=TRAINING_THREADS):
    """torch with `threads` intra-op threads and deterministic algorithms only; restored after."""
    previous = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.set_num_threads(previous[0])
        torch.use_deterministic_algorithms(previous[1])


def normalizer(mean, std):
    """uint8 images (N, 3, H, W) -> float, normalised as the backends feed the model (`model.mean`
    and `model.std`, RGB on the 0..1 scale)."""
    mean = torch.tensor(mean).view(1, 3, 1, 1) * 255
    std = torch.tensor(std).view(1, 3, 1, 1) * 255
    return lambda images: (images.float() - mean) / std


def load_training_pairs(json_path, data_root, class_names):
    """(uint8 images (N, 3, H, W), uint8 label maps (N, H, W)) of a COCO split."""
    coco_api, class_of_category = load_ground_truth(json_path, class_names)
    image_ids = sorted(coco_api.imgs)
    images = torch.stack(
        [decode_rgb(f"{data_root}/{coco_api.imgs[i]['file_name']}") for i in image_ids]
    )
    labels = np.stack([rasterize_ground_truth(coco_api, i, class_of_category) for i in image_ids])
    return images, torch.from_numpy(labels)


def random_crops(images, labels, crop, batch_size, generator):
    """A batch of aligned random crops with random horizontal flips."""
    picks = torch.randint(len(images), (batch_size,), generator=generator)
    height, width = images.shape[-2:]
    tops = torch.randint(height - crop + 1, (batch_size,), generator=generator)
    lefts = torch.randint(width - crop + 1, (batch_size,), generator=generator)
    flips = torch.rand(batch_size, generator=generator) < 0.5
    image_crops, label_crops = [], []
    for pick, top, left, flip in zip(picks, tops, lefts, flips, strict=True):
        image = images[pick, :, top : top + crop, left : left + crop]
        label = labels[pick, top : top + crop, left : left + crop]
        image_crops.append(image.flip(-1) if flip else image)
        label_crops.append(label.flip(-1) if flip else label)
    return torch.stack(image_crops), torch.stack(label_crops)


@torch.no_grad()
def recalibrate_batchnorm(model, images, batch_size, normalize):
    """Replace BatchNorm running statistics by exact averages over `images` at full size.

    MobileNetV3's BN momentum (0.01) lags the fast-changing weights of a short training run, so
    eval-mode predictions would use stale statistics.
    """
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative moving average
    model.train()
    for start in range(0, len(images), batch_size):
        model(normalize(images[start : start + batch_size]))
    model.eval()


@deterministic_torch()
def train_demo_model(
    json_path,
    data_root,
    class_names,
    weights_path,
    architecture,
    steps,
    crop,
    seed,
    mean,
    std,
    batch_size=8,
    learning_rate=3e-3,
):
    """Train and save a state dict (the same whatever thread count the process has); returns
    the final training loss."""
    normalize = normalizer(mean, std)
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    images, labels = load_training_pairs(json_path, data_root, class_names)
    model = build_torchvision_model(architecture, len(class_names)).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, learning_rate, total_steps=steps)
    loss_value = float("nan")
    with tqdm(range(steps), desc="train demo model", unit="step") as progress:
        for _ in progress:
            image_batch, label_batch = random_crops(images, labels, crop, batch_size, generator)
            scores = model(normalize(image_batch))["out"]
            loss = torch.nn.functional.cross_entropy(scores, label_batch.long())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            loss_value = loss.item()
            progress.set_postfix(loss=f"{loss_value:.3f}")
    recalibrate_batchnorm(model, images, batch_size, normalize)
    with atomic_path(weights_path) as tmp_path:
        torch.save(model.state_dict(), tmp_path)
    log.info("demo model: %d steps, final loss %.4f -> %s", steps, loss_value, weights_path)
    return loss_value


def demo_model_stage(
    data_root, class_names, weights_path, architecture, steps, crop, seed, mean, std
):
    """Stage entry: train the demo model on the synthetic train split."""
    train_demo_model(
        f"{data_root}/train.json", data_root, class_names, weights_path, architecture, steps,
        crop, seed, mean, std,
    )  # fmt: skip
