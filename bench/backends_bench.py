"""The new backends at their floors: for an SMP Unet-ResNet34 and a SegFormer-B2-sized
transformers model (random init, 11 classes, 512² JPEGs), the model alone on preloaded device
batches (the floor), the infer stage in-process (decode in workers, batches, labels to a
file), and each library's usual loop as its users write it (one image at a time). Prints a
markdown table with the ratios.

    python bench/backends_bench.py --images 819 --batch-size 32 --workers 8
"""

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from rows_infer import infer_to_file, loaded, model_floor
from timing import seconds

from segsubmit.manifest import build_manifest
from segsubmit.testing import CLASSES, NUM_CLASSES


def smooth_images(root, count, unique=64, size=512):
    """`root/val.json` (no annotations) listing `count` JPEGs under distinct names: copies of
    `unique` smooth random pictures (Pillow only: runs where OpenCV is not installed)."""
    rng = np.random.default_rng(0)
    pictures = []
    for _ in range(unique):
        coarse = rng.integers(0, 256, (size // 16, size // 16, 3), np.uint8)
        pictures.append(Image.fromarray(coarse).resize((size, size), Image.BICUBIC))
    images = []
    for index in range(count):
        name = f"batch_{index % 3 + 1:02d}_vt/{index:05d}.jpg"
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        pictures[index % unique].save(root / name, quality=95)
        images.append({"id": index, "file_name": name, "width": size, "height": size})
    categories = [{"id": i, "name": name} for i, name in enumerate(CLASSES[1:], start=1)]
    payload = {"images": images, "annotations": [], "categories": categories}
    (root / "val.json").write_text(json.dumps(payload))
    return root / "val.json"


def smp_model(folder):
    """An SMP Unet-ResNet34 state dict (random init) and its backend options."""
    import segmentation_models_pytorch as smp

    torch.manual_seed(0)
    model = smp.create_model("Unet", encoder_name="resnet34", encoder_weights=None,
                             classes=NUM_CLASSES)  # fmt: skip
    torch.save(model.state_dict(), folder / "smp.pt")
    return folder / "smp.pt", {"architecture": "Unet", "encoder": "resnet34"}


def segformer_b2(folder):
    """A `save_pretrained` folder of a SegFormer with B2's sizes (random init)."""
    from transformers import (
        SegformerConfig,
        SegformerForSemanticSegmentation,
        SegformerImageProcessor,
    )

    torch.manual_seed(0)
    config = SegformerConfig(num_labels=NUM_CLASSES, depths=[3, 4, 6, 3],
                             hidden_sizes=[64, 128, 320, 512], decoder_hidden_size=768)  # fmt: skip
    SegformerForSemanticSegmentation(config).save_pretrained(folder / "segformer")
    SegformerImageProcessor().save_pretrained(folder / "segformer")
    return folder / "segformer", {}


def smp_usual_loop(weights, paths, device):
    """SMP as its users run it: per image, decode (Pillow), normalise, forward, argmax, to
    host."""
    import segmentation_models_pytorch as smp

    model = smp.create_model("Unet", encoder_name="resnet34", encoder_weights=None,
                             classes=NUM_CLASSES)  # fmt: skip
    model.load_state_dict(torch.load(weights, weights_only=True))
    model = model.eval().to(device)
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])

    def run():
        with torch.inference_mode():
            for path in paths:
                image = np.asarray(Image.open(path).convert("RGB")) / 255.0
                tensor = torch.from_numpy(((image - mean) / std).transpose(2, 0, 1)).float()
                model(tensor[None].to(device)).argmax(1).cpu().numpy()

    run()
    return run


def transformers_usual_loop(folder, paths, device):
    """transformers as its docs show it: per image, processor, forward, post-processing."""
    from transformers import AutoImageProcessor, AutoModelForSemanticSegmentation

    processor = AutoImageProcessor.from_pretrained(folder)
    model = AutoModelForSemanticSegmentation.from_pretrained(folder).eval().to(device)

    def run():
        with torch.inference_mode():
            for path in paths:
                image = Image.open(path).convert("RGB")
                inputs = processor(images=image, return_tensors="pt").to(device)
                outputs = model(**inputs)
                processor.post_process_semantic_segmentation(
                    outputs, target_sizes=[image.size[::-1]]
                )[0].cpu().numpy()

    run()
    return run


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=819)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    arguments = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    work = Path(tempfile.mkdtemp(prefix="backends-bench-"))
    root = work / "data"
    json_path = smooth_images(root, arguments.images)
    entries = build_manifest(json_path, root, CLASSES, 1).images
    paths = [root / entry.path for entry in entries]
    batch, workers, repeats = arguments.batch_size, arguments.workers, arguments.repeats
    rows = []
    models = {"smp": (smp_model, smp_usual_loop), "transformers": (segformer_b2,
              transformers_usual_loop)}  # fmt: skip
    for backend, (build, usual_loop) in models.items():
        weights, options = build(work)
        predictor = loaded(backend, weights, device=str(device), **options)
        floor = seconds(model_floor(*predictor, paths, batch), repeats)
        stage = seconds(infer_to_file(predictor, entries, root, batch, workers,
                                      work / f"{backend}.npz"), repeats)  # fmt: skip
        usual = seconds(usual_loop(weights, paths, device), repeats)
        rows.append((backend, floor, stage, usual))
        print(f"{backend}: floor {floor:.3f} s, stage {stage:.3f} s, usual {usual:.3f} s")
    print(f"\n{len(paths)} images 512², {device}, batch {batch}, {workers} workers, "
          f"median of {repeats}")  # fmt: skip
    print("| backend | model floor (s) | infer stage (s) | stage / floor | library's usual loop "
          "(s) | usual / stage |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- |")
    for backend, floor, stage, usual in rows:
        print(f"| {backend} | {floor:.3f} | {stage:.3f} | {stage / floor:.2f}× | {usual:.3f} | "
              f"{usual / stage:.2f}× |")  # fmt: skip


if __name__ == "__main__":
    main()
