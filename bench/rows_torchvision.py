"""torchvision rows: a random-init model's floor and infer stage on the bench's images, and the
trained demo model's mIoU per precision on a held-out synthetic demo split."""

from rows_infer import PRECISIONS, infer_to_file, loaded, model_floor, pixel_agreement
from timing import seconds

from segsubmit.ground_truth import load_ground_truth, rasterize_ground_truth
from segsubmit.manifest import build_manifest
from segsubmit.metrics import score_images
from segsubmit.synthetic import make_demo_dataset
from segsubmit.testing import CLASSES, DEFAULTS, predict_shard, save_random_model


def torchvision_rows(table, arguments, work, entries, root):
    """Floor and infer stage fp32 of `--torchvision-architecture`; labels to
    `work`/labels-torchvision.npz."""
    architecture = arguments.torchvision_architecture
    weights = save_random_model(work / f"{architecture}.pt", architecture=architecture)
    predictor = loaded("torchvision", weights, architecture=architecture)
    paths = [root / entry.file_name for entry in entries]
    floor_name = f"{architecture} floor fp32 (forward only)"
    floor = model_floor(*predictor, paths, arguments.batch_size)
    table.row(floor_name, seconds(floor, arguments.repeats))
    run = infer_to_file(predictor, entries, root, arguments.batch_size, arguments.workers,
                        work / "labels-torchvision.npz")  # fmt: skip
    table.row(f"{architecture} infer stage fp32", seconds(run, arguments.repeats), floor_name)


def demo_split(folder, count, size=DEFAULTS["demo"]["image_size"]):
    """(manifest entries, ground-truth maps) of a synthetic split the demo model never saw."""
    json_path = folder / "val.json"
    if not json_path.is_file():  # made once per work folder
        make_demo_dataset(folder, {"val": json_path}, {"val": count}, 1, size, CLASSES)
    entries = build_manifest(json_path, folder, CLASSES, 1).images
    coco_api, class_of_category = load_ground_truth(json_path, CLASSES)
    return entries, [rasterize_ground_truth(coco_api, e.id, class_of_category)
                     for e in entries]  # fmt: skip


def demo_precision_rows(table, arguments, work):
    """mIoU of the trained demo model (`--demo-weights`) per precision."""
    entries, truths = demo_split(work / "demo", arguments.demo_images)
    maps = {}
    for name in [name for name in arguments.precisions if name in ("fp32", "bf16", "fp16")]:
        predictor, transform = loaded("torchvision", arguments.demo_weights, **PRECISIONS[name])
        maps[name] = predict_shard(entries, work / "demo", predictor, arguments.batch_size,
                                   arguments.workers, transform=transform)  # fmt: skip
        miou = score_images(truths, maps[name], len(CLASSES))["miou"]
        table.figures[f"demo mIoU {name}"] = miou
        note = f"pixels equal to fp32: {pixel_agreement(maps['fp32'], maps[name]):.5f}; "
        note += f"mIoU − fp32: {miou - table.figures['demo mIoU fp32']:+.5f}"
        table.row(f"demo model mIoU {name} ({len(entries)} images)", miou, note=note, unit="")
