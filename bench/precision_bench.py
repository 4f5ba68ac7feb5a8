"""A faster floor, measured on trained models (issue 20): fp32 against bf16, channels_last and
torch.compile, each as speed (the model floor: forward + argmax on model-ready device batches,
median of repeats) and as mIoU on a synthetic split the models never saw, with the pixels equal
to fp32.

Models: the demo recipe (torchvision LR-ASPP MobileNetV3, `segsubmit.demo_model`'s crops,
optimiser and schedule, trained here on this machine's device) and a DeepLabV3-ResNet50 trained
briefly with the same recipe. torch.compile rows run in fresh processes sharing one inductor
cache folder: the first pays the compile from an empty cache, the second reads the cache (what a
rerun of the workflow would pay).

    python bench/precision_bench.py --out /tmp/precision            # the device run
    python bench/precision_bench.py --out /tmp/precision --cpu-smoke
"""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from rows_infer import loaded, pixel_agreement
from rows_torchvision import demo_split
from timing import Table, seconds, timed

from segsubmit.backends.torchvision_model import build_torchvision_model
from segsubmit.demo_model import (
    load_training_pairs,
    normalizer,
    random_crops,
    recalibrate_batchnorm,
)
from segsubmit.images import decode_rgb
from segsubmit.metrics import score_images
from segsubmit.synthetic import make_demo_dataset
from segsubmit.testing import CLASSES, DEFAULTS

CONFIGS = {
    "fp32": {},
    "bf16": {"precision": "bf16"},
    "fp32 + channels_last": {"channels_last": True},
    "bf16 + channels_last": {"precision": "bf16", "channels_last": True},
}
COMPILED = ("fp32", "bf16 + channels_last")
ARCHITECTURES = {"demo": "lraspp_mobilenet_v3_large", "r50": "deeplabv3_resnet50"}


def train(architecture, data_root, weights, steps, crop, device):
    """Train `architecture` with the demo recipe on `device`; (seconds, final loss)."""
    demo = DEFAULTS["demo"]
    on_host = normalizer(DEFAULTS["model"]["mean"], DEFAULTS["model"]["std"])

    def normalize(images):
        return on_host(images).to(device)

    torch.manual_seed(demo["seed"])
    generator = torch.Generator().manual_seed(demo["seed"])
    images, labels = load_training_pairs(data_root / "train.json", data_root, CLASSES)
    model = build_torchvision_model(architecture, len(CLASSES)).train().to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, 3e-3, total_steps=steps)

    def fit():
        loss = None
        for _ in range(steps):
            image_batch, label_batch = random_crops(images, labels, crop, 8, generator)
            scores = model(normalize(image_batch))["out"]
            loss = torch.nn.functional.cross_entropy(scores, label_batch.to(device).long())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
        recalibrate_batchnorm(model, images, 8, normalize)
        return loss.item()

    elapsed, loss = timed(fit)
    torch.save(model.state_dict(), weights)
    return elapsed, loss


def device_batches(predictor, transform, entries, root, batch_size):
    """The split's images, decoded and made model-ready on the device, in batches."""
    images = [decode_rgb(root / entry.file_name) for entry in entries]
    if transform is not None:
        images = [transform(image) for image in images]
    return [
        predictor.model_input(torch.stack(images[start : start + batch_size]).to(predictor.device))
        for start in range(0, len(images), batch_size)
    ]


def floor_and_maps(predictor, batches, size, repeats):
    """(median seconds of forward + argmax over all batches, the label maps on the host)."""
    maps = [m.cpu().numpy() for batch in batches for m in predictor.predict_prepared(batch, size)]

    def forward_all():
        for batch in batches:
            predictor.predict_prepared(batch, size)

    return seconds(forward_all, repeats), maps


def measure(weights, architecture, config, split, batch_size, repeats, compiled=False):
    """{floor, miou, maps, compile} of one model and configuration (`compile`: seconds of the
    first pass when `compiled`, which includes compiling)."""
    entries, truths, root = split
    predictor, transform = loaded(
        "torchvision", weights, architecture=architecture, **CONFIGS[config]
    )
    batches = device_batches(predictor, transform, entries, root, batch_size)
    size = tuple(entries[0].size)
    result = {}
    if compiled:
        predictor.module = torch.compile(predictor.module)
        result["compile"], _ = timed(
            lambda: [predictor.predict_prepared(batch, size) for batch in batches]
        )
    result["floor"], maps = floor_and_maps(predictor, batches, size, repeats)
    result["miou"] = score_images(truths, maps, len(CLASSES))["miou"]
    return result, maps


def compiled_in_fresh_process(arguments, model, config, cache):
    """`measure(..., compiled=True)` in a new python process with the inductor cache `cache`."""
    command = [sys.executable, __file__, "--out", str(arguments.out), "--compile-child", model,
               config, *forwarded(arguments)]  # fmt: skip
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(cache)}
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if result.returncode:
        output = result.stdout[-2000:] + "\n" + result.stderr[-4000:]
        raise RuntimeError(f"compile child failed:\n{output}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def forwarded(arguments):
    """The options a child process needs to rebuild the same split and model."""
    names = ("images", "batch_size", "repeats", "image_size")
    return [part for name in names
            for part in (f"--{name.replace('_', '-')}", str(getattr(arguments, name)))]  # fmt: skip


def prepare(arguments):
    """(data root of the train split, (entries, truths, root) of the held-out split)."""
    work = Path(arguments.out)
    data_root = work / "data"
    if not (data_root / "train.json").is_file():
        counts = {"train": DEFAULTS["demo"]["images"]["train"]}
        make_demo_dataset(data_root, {"train": data_root / "train.json"}, counts,
                          DEFAULTS["demo"]["seed"], arguments.image_size, CLASSES)  # fmt: skip
    held_out = work / "held_out"
    entries, truths = demo_split(held_out, arguments.images, arguments.image_size)
    return data_root, (entries, truths, held_out)


def run(arguments):
    table = Table()
    work = Path(arguments.out)
    work.mkdir(parents=True, exist_ok=True)
    data_root, split = prepare(arguments)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    figures = {}
    for model in arguments.models:
        architecture = ARCHITECTURES[model]
        weights = work / f"{model}.pt"
        crop = min(DEFAULTS["demo"]["crop"], arguments.image_size)
        seconds_trained, loss = train(architecture, data_root, weights, arguments.train_steps,
                                      crop, device)  # fmt: skip
        table.row(f"{model}: training ({arguments.train_steps} steps)", seconds_trained,
                  note=f"final loss {loss:.3f}")  # fmt: skip
        reference = None
        for config in CONFIGS:
            result, maps = measure(weights, architecture, config, split, arguments.batch_size,
                                   arguments.repeats)  # fmt: skip
            reference = reference or (result, maps)
            agreement = pixel_agreement(reference[1], maps)
            base = f"{model}: floor fp32"
            name = f"{model}: floor {config}"
            table.row(name, result["floor"], base if config != "fp32" else None,
                      f"mIoU {result['miou']:.4f} ({result['miou'] - reference[0]['miou']:+.4f}); "
                      f"pixels equal to fp32 {agreement:.5f}")  # fmt: skip
            figures[name] = {"floor": result["floor"], "miou": result["miou"], "equal": agreement}
        if not arguments.compile:
            continue
        cache = work / "inductor-cache" / model
        for config in COMPILED:
            for attempt in ("empty cache", "warm cache"):
                result = compiled_in_fresh_process(arguments, model, config, cache)
                name = f"{model}: compiled {config}, {attempt}"
                table.row(f"{name}: first pass", result["compile"])
                table.row(f"{name}: floor", result["floor"], f"{model}: floor fp32",
                          f"mIoU {result['miou']:.4f}")  # fmt: skip
                figures[name] = result
    (work / "precision.json").write_text(json.dumps({"rows": table.figures, **figures}, indent=1))
    (work / "precision.md").write_text(table.text() + "\n")
    print(table.text())


def compile_child(arguments):
    model, config = arguments.compile_child
    _, split = prepare(arguments)
    weights = Path(arguments.out) / f"{model}.pt"
    result, _ = measure(weights, ARCHITECTURES[model], config, split, arguments.batch_size,
                        arguments.repeats, compiled=True)  # fmt: skip
    print(json.dumps(result))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="work folder (data, weights, json)")
    parser.add_argument("--images", type=int, default=256, help="held-out images")
    parser.add_argument("--image-size", type=int, default=DEFAULTS["demo"]["image_size"])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--train-steps", type=int, default=DEFAULTS["demo"]["train_steps"])
    parser.add_argument("--models", nargs="+", default=list(ARCHITECTURES))
    parser.add_argument("--no-compile", dest="compile", action="store_false")
    parser.add_argument("--compile-child", nargs=2, help=argparse.SUPPRESS)
    smoke = "tiny sizes on the CPU: 4 images of 64², 2 steps, demo model, no compile"
    parser.add_argument("--cpu-smoke", action="store_true", help=smoke)
    arguments = parser.parse_args()
    if arguments.cpu_smoke:
        arguments.images, arguments.image_size, arguments.batch_size = 4, 64, 2
        arguments.repeats, arguments.train_steps, arguments.models = 1, 2, ["demo"]
        arguments.compile = False
    if arguments.compile_child:
        compile_child(arguments)
    else:
        run(arguments)


if __name__ == "__main__":
    main()
