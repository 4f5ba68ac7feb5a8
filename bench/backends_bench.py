"""The new backends at their floors: for an SMP Unet-ResNet34, a SegFormer-B2-sized transformers
model and MMSeg's own SegFormer-B2 config (random init, 11 classes, 512² JPEGs), the model alone
on preloaded device batches (the floor), each phase of the input and output side alone
(`rows_phases`), the input side alone and the infer stage in-process (decode in workers,
batches, labels to a file) per worker count, and each library's usual loop as its users write
it (one image at a time; MMSeg: `inference_model` per image). Prints every row with its ratio
to the backend's floor, then a summary table. Images and label files go under TMPDIR: the
machine's disk can cost the loop more than the code does (bench/RESULTS.md, 2026-12-03).

    TMPDIR=/dev/shm python bench/backends_bench.py --images 819 --batch-size 32 --workers 8 auto
    python bench/backends_bench.py --cpu-smoke            # tiny models, 64² images, on the CPU
"""

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from rows_infer import (
    infer_to_file,
    input_pipeline,
    loaded,
    model_floor,
    pixel_agreement,
    shard_file_agreement,
)
from rows_phases import gpu_decode_rows, phase_rows, stage_from_first_batch, stage_threads
from timing import Table, seconds

from segsubmit.infer import resolve_workers
from segsubmit.labels import read_label_shard
from segsubmit.manifest import build_manifest
from segsubmit.testing import (
    CLASSES,
    NUM_CLASSES,
    mmseg_tta_maps,
    mmseg_tta_reference,
    mmseg_tta_sample,
)


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


def smp_model(folder, tiny, size):
    """An SMP Unet-ResNet34 state dict (random init) and its backend options."""
    import segmentation_models_pytorch as smp

    torch.manual_seed(0)
    model = smp.create_model("Unet", encoder_name="resnet34", encoder_weights=None,
                             classes=NUM_CLASSES)  # fmt: skip
    torch.save(model.state_dict(), folder / "smp.pt")
    return folder / "smp.pt", {"architecture": "Unet", "encoder": "resnet34"}


def segformer_b2(folder, tiny, size):
    """A `save_pretrained` folder of a SegFormer with B2's sizes (tiny: one block per stage,
    narrow; the processor resizing to `size`), random init."""
    from transformers import (
        SegformerConfig,
        SegformerForSemanticSegmentation,
        SegformerImageProcessor,
    )

    torch.manual_seed(0)
    if tiny:
        config = SegformerConfig(num_labels=NUM_CLASSES, depths=[1, 1, 1, 1],
                                 hidden_sizes=[8, 16, 32, 64], decoder_hidden_size=32,
                                 num_attention_heads=[1, 1, 2, 2])  # fmt: skip
    else:
        config = SegformerConfig(num_labels=NUM_CLASSES, depths=[3, 4, 6, 3],
                                 hidden_sizes=[64, 128, 320, 512],
                                 decoder_hidden_size=768)  # fmt: skip
    SegformerForSemanticSegmentation(config).save_pretrained(folder / "segformer")
    SegformerImageProcessor(size={"height": size, "width": size}).save_pretrained(
        folder / "segformer"
    )
    return folder / "segformer", {}


MMSEG_CONFIG = "segformer/segformer_mit-b2_8xb2-160k_ade20k-512x512.py"


def mmseg_segformer_b2(folder, tiny, size):
    """MMSeg's own SegFormer-B2 ADE20K config (from the installed package's configs) with 11
    classes, no pretrained download, BN for SyncBN (equal at inference), its test Resize
    scaled to `size` (512: unchanged, (2048, 512)); tiny: one narrow block per stage. Dumped
    as training dumps it, with a random-init checkpoint."""
    import mmseg
    from mmengine import Config
    from mmseg.apis import init_model

    cfg = Config.fromfile(Path(mmseg.__file__).parent / ".mim" / "configs" / MMSEG_CONFIG)
    cfg.model.backbone.init_cfg = None
    cfg.model.decode_head.num_classes = NUM_CLASSES
    cfg.model.decode_head.norm_cfg = dict(type="BN", requires_grad=True)
    cfg.test_pipeline[1]["scale"] = (4 * size, size)
    if tiny:
        cfg.model.backbone.update(embed_dims=8, num_layers=[1, 1, 1, 1], num_heads=[1, 2, 4, 8])
        cfg.model.decode_head.update(in_channels=[8, 16, 32, 64], channels=16)
    config_file = folder / "mmseg_segformer_b2.py"
    cfg.dump(str(config_file))
    torch.manual_seed(0)
    model = init_model(str(config_file), None, device="cpu")
    torch.save({"state_dict": model.state_dict(), "meta": {}}, folder / "mmseg.pth")
    return folder / "mmseg.pth", {"config_file": str(config_file)}


WARM_IMAGES = 8  # the libraries' per-image loops warm up on this many images, not all


def smp_usual_loop(weights, options, paths, device):
    """SMP as its users run it: per image, decode (Pillow), normalise, forward, argmax, to
    host."""
    import segmentation_models_pytorch as smp

    model = smp.create_model("Unet", encoder_name="resnet34", encoder_weights=None,
                             classes=NUM_CLASSES)  # fmt: skip
    model.load_state_dict(torch.load(weights, weights_only=True))
    model = model.eval().to(device)
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])

    def run(chosen=paths):
        with torch.inference_mode():
            for path in chosen:
                image = np.asarray(Image.open(path).convert("RGB")) / 255.0
                tensor = torch.from_numpy(((image - mean) / std).transpose(2, 0, 1)).float()
                model(tensor[None].to(device)).argmax(1).cpu().numpy()

    run(paths[:WARM_IMAGES])
    return run


def transformers_usual_loop(folder, options, paths, device):
    """transformers as its docs show it: per image, processor, forward, post-processing."""
    from transformers import AutoImageProcessor, AutoModelForSemanticSegmentation

    processor = AutoImageProcessor.from_pretrained(folder)
    model = AutoModelForSemanticSegmentation.from_pretrained(folder).eval().to(device)

    def run(chosen=paths):
        with torch.inference_mode():
            for path in chosen:
                image = Image.open(path).convert("RGB")
                inputs = processor(images=image, return_tensors="pt").to(device)
                outputs = model(**inputs)
                processor.post_process_semantic_segmentation(
                    outputs, target_sizes=[image.size[::-1]]
                )[0].cpu().numpy()

    run(paths[:WARM_IMAGES])
    return run


def mmseg_usual_loop(weights, options, paths, device):
    """MMSeg as its users run it at batch 1: `init_model`, then `inference_model` per image file
    (its test pipeline, `test_step`), the map to host."""
    from mmseg.apis import inference_model, init_model

    model = init_model(options["config_file"], str(weights), device=str(device))

    def run(chosen=paths):
        for path in chosen:
            inference_model(model, str(path)).pred_sem_seg.data.cpu().numpy()

    run(paths[:WARM_IMAGES])
    return run


MODELS = {
    "smp": (smp_model, smp_usual_loop, "SMP per-image loop"),
    "transformers": (segformer_b2, transformers_usual_loop,
                     "processor -> model -> post_process_semantic_segmentation, per image"),
    "mmseg": (mmseg_segformer_b2, mmseg_usual_loop, "MMSeg inference_model per image"),
}  # fmt: skip


def mmseg_tta_rows(table, weights, options, entries, root, arguments, work, device):
    """Our infer stage with `model.mmseg.tta` against MMSeg's TTA model at batch 1, on the
    first `--mmseg-tta-images` images, with the config's own tta_pipeline (SegFormer ADE20K:
    6 ratios x 2 flips); their pixel agreement (JPEGs: mmcv decodes with OpenCV, we with
    torchvision)."""
    chosen = entries[: arguments.mmseg_tta_images]
    ours_name = f"mmseg TTA, {len(chosen)} images: our infer stage (model.mmseg.tta)"
    ours = loaded("mmseg", weights, device=str(device), tta=True, **options)
    labels_path = work / "mmseg-tta.npz"
    workers = resolve_workers("auto", device)
    run = infer_to_file(ours, chosen, root, arguments.batch_size, workers, labels_path)
    table.row(ours_name, seconds(run, arguments.repeats))
    model, pipeline = mmseg_tta_reference(options["config_file"], weights, str(device))
    samples = [mmseg_tta_sample(root / entry.path, entry.size) for entry in chosen]
    mmseg_tta_maps(model, pipeline, samples[:2])  # warm-up
    theirs = []
    timed = seconds(lambda: theirs.append(mmseg_tta_maps(model, pipeline, samples)),
                    arguments.loop_repeats or arguments.repeats)  # fmt: skip
    agreement = pixel_agreement(read_label_shard(labels_path)[1], theirs[-1])
    table.row(f"mmseg TTA, {len(chosen)} images: MMSeg's TTA model, test_step per image "
              "(tools/test.py --tta at batch 1)", timed, ours_name,
              f"pixels equal to ours: {agreement:.5f}")  # fmt: skip


def worker_counts(values, device):
    """(label, count) of each `--workers` value (`auto` resolved as the infer stage does)."""
    return [
        (f"auto = {resolve_workers('auto', device)}" if value == "auto" else value,
         resolve_workers(value if value == "auto" else int(value), device))
        for value in values
    ]  # fmt: skip


def backend_rows(table, backend, arguments, work, entries, root, device):
    """Every row of one backend (names prefixed with it); its summary figures."""
    build, usual_loop, usual_name = MODELS[backend]
    paths = [root / entry.path for entry in entries]
    batch, repeats = arguments.batch_size, arguments.repeats
    weights, options = build(work, arguments.cpu_smoke, arguments.size)
    predictor = loaded(backend, weights, device=str(device), **options)
    floor = f"{backend}: model floor"
    table.row(floor, seconds(model_floor(*predictor, paths, batch), repeats))
    phase_rows(table, backend, *predictor, paths, batch, work / f"{backend}-phase.npz", repeats)
    if device.type == "cuda":
        gpu_decode_rows(table, backend, paths, batch, repeats)
    else:
        table.skip(f"{backend}: phase decode on the GPU (nvjpeg)", "no CUDA device")
    stages, loops = {}, {}
    with stage_threads(device):
        for label, count in worker_counts(arguments.workers, device):
            pipeline = input_pipeline(*predictor, entries, root, batch, count)
            pipeline()
            table.row(f"{backend}: input side alone (decode, pin, copy, model_input), "
                      f"{label} workers", seconds(pipeline, repeats), floor)  # fmt: skip
            labels_path = work / f"{backend}-{count}.npz"
            run = infer_to_file(predictor, entries, root, batch, count, labels_path)
            stages[label] = seconds(run, repeats)
            first = work / f"{backend}-{worker_counts(arguments.workers, device)[0][1]}.npz"
            table.row(f"{backend}: infer stage, {label} workers", stages[label], floor,
                      f"pixels equal to the first row's: "
                      f"{shard_file_agreement(first, labels_path):.5f}")  # fmt: skip
            wait, loop = stage_from_first_batch(predictor, entries, root, batch, count,
                                                labels_path, repeats)  # fmt: skip
            table.row(f"{backend}: first batch after the loader starts, {label} workers", wait,
                      floor)  # fmt: skip
            loops[label] = loop
            table.row(f"{backend}: infer stage loop from the first batch (as the job, whose "
                      f"workers start before the model loads), {label} workers", loop,
                      floor)  # fmt: skip
    usual = seconds(usual_loop(weights, options, paths, device), arguments.loop_repeats or repeats)
    table.row(f"{backend}: {usual_name}", usual, floor)
    if backend == "mmseg" and arguments.mmseg_tta_images:
        mmseg_tta_rows(table, weights, options, entries, root, arguments, work, device)
    return table.figures[floor], stages, loops, usual, usual_name


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=819)
    parser.add_argument("--size", type=int, default=512, help="image side")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", nargs="+", default=["8", "auto"],
                        help="worker counts of the input-side and stage rows, or auto")  # fmt: skip
    parser.add_argument("--repeats", type=int, default=3)
    loops = "repeats of the libraries' per-image loops (default: --repeats)"
    parser.add_argument("--loop-repeats", type=int, default=None, help=loops)
    parser.add_argument("--mmseg-tta-images", type=int, default=64,
                        help="images of the MMSeg TTA rows (0: none)")  # fmt: skip
    parser.add_argument("--backends", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--cpu-smoke", action="store_true",
                        help="tiny models on the CPU (--images 4 --size 64 --batch-size 2 "
                             "--repeats 1 unless given): checks that every row runs")  # fmt: skip
    arguments = parser.parse_args()
    if arguments.cpu_smoke:
        smoke = {"images": 4, "size": 64, "batch_size": 2, "repeats": 1, "workers": ["0", "auto"],
                 "mmseg_tta_images": 2}  # fmt: skip
        for key, value in smoke.items():
            if getattr(arguments, key) == parser.get_default(key):
                setattr(arguments, key, value)
    cuda = torch.cuda.is_available() and not arguments.cpu_smoke
    device = torch.device("cuda" if cuda else "cpu")
    work = Path(tempfile.mkdtemp(prefix="backends-bench-"))
    root = work / "data"
    json_path = smooth_images(root, arguments.images, size=arguments.size)
    entries = build_manifest(json_path, root, CLASSES, 1).images
    table, summary = Table(), {}
    for backend in arguments.backends:
        summary[backend] = backend_rows(table, backend, arguments, work, entries, root, device)
    print(f"\n{len(entries)} images {arguments.size}², {device}, batch {arguments.batch_size}, "
          f"median of {arguments.repeats}, work folder {work}")  # fmt: skip
    print(table.text())
    print("\n| backend | model floor (s) | infer stage (s), per worker count | stage / floor "
          "| loop from the first batch / floor | library's usual loop (s) "
          "| usual / stage |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for backend, (floor, stages, loops, usual, usual_name) in summary.items():
        best, best_loop = min(stages, key=stages.get), min(loops, key=loops.get)
        shown = ", ".join(f"{seconds_:.3f} ({label})" for label, seconds_ in stages.items())
        print(f"| {backend} | {floor:.3f} | {shown} | {stages[best] / floor:.2f}× ({best}) | "
              f"{loops[best_loop] / floor:.2f}× ({best_loop}) | {usual:.3f} ({usual_name}) | "
              f"{usual / stages[best]:.2f}× |")  # fmt: skip


if __name__ == "__main__":
    main()
