"""One table: the seed's pipelines vs this workflow, same model, same images, same run.

Rows: (1) seed A, per-image DefaultPredictor + Albumentations + np.vstack; (2) seed B, batched
predictor (bs 32, 4 workers) + Kornia + np.vstack; (3) the model's forward pass alone on
preloaded, already-prepared GPU tensors (the floor); (4) this workflow's infer stage (fp32, bf16,
bf16 + channels_last, fp16; pixel agreement with fp32), its input pipeline alone, and the
resize, submission, validation, ground-truth and score stages; (5) the whole `snakemake` run,
cold and as a no-op rerun; plus peak host memory of the infer job at N and 10 N images, a
torchvision model's floor and infer stage, and the mIoU of each precision with the trained demo
model (`--demo-weights`) on a held-out synthetic demo split.

    PYTHONPATH=$PWD/.deps/detectron2 python bench/gpu_bench.py --images 819 --out bench-out
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "tests"))
from conftest import CLASSES, make_dataset  # noqa: E402
from test_detectron2 import write_detectron2_model  # noqa: E402

from segsubmit.backends import PredictorSettings, load_predictor  # noqa: E402
from segsubmit.images import decode_rgb  # noqa: E402
from segsubmit.infer import predict_shard, predict_shard_to_file, shard_loader  # noqa: E402
from segsubmit.labels import read_label_shard  # noqa: E402
from segsubmit.manifest import build_manifest, write_manifest  # noqa: E402
from segsubmit.metrics import load_ground_truth, rasterize_ground_truth, score_images  # noqa: E402
from segsubmit.stages import (  # noqa: E402
    ground_truth_stage,
    resize_stage,
    score_stage,
    submission_stage,
    validate_stage,
)  # noqa: E402
from segsubmit.synthetic import make_demo_dataset  # noqa: E402


def synchronize():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def synchronized_seconds(function):
    """Wall time of `function()`, GPU work included."""
    synchronize()
    started = time.perf_counter()
    result = function()
    synchronize()
    return time.perf_counter() - started, result


def median_seconds(function, repeats):
    return statistics.median(synchronized_seconds(function)[0] for _ in range(repeats))


def replicate_dataset(root, count, unique=64):
    """`count` JPEGs (copies of `unique` synthetic ones, distinct names) with annotations."""
    make_dataset(root / "unique", {"val": unique}, size=512)
    source = json.loads((root / "unique" / "val.json").read_text())
    images, annotations = [], []
    for index in range(count):
        original = source["images"][index % unique]
        file_name = f"batch_{index % 3 + 1:02d}_vt/{index:05d}.jpg"
        (root / file_name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(root / "unique" / original["file_name"], root / file_name)
        images.append({**original, "id": index, "file_name": file_name})
        for annotation in source["annotations"]:
            if annotation["image_id"] == original["id"]:
                annotations.append({**annotation, "id": len(annotations) + 1, "image_id": index})
    coco = {**source, "images": images, "annotations": annotations}
    (root / "val.json").write_text(json.dumps(coco))
    return root / "val.json"


def seed_config(config_file, weights):
    """The seeds' yacs config, on the GPU when there is one (as the seeds ran)."""
    from detectron2.config import get_cfg

    cfg = get_cfg()
    cfg.merge_from_file(str(config_file))
    cfg.MODEL.WEIGHTS = str(weights)
    cfg.MODEL.DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
    return cfg


def seed_a(config_file, weights, paths, size=256):
    """The seed's per-image loop (dummy image HWC, as current Albumentations requires)."""
    import albumentations as A
    import cv2
    from detectron2.engine import DefaultPredictor

    predictor = DefaultPredictor(seed_config(config_file, weights))
    transform = A.Compose([A.Resize(size, size)])
    predictions = np.empty((0, size * size), dtype=np.int64)
    for path in paths:
        outputs = predictor(cv2.imread(str(path)))
        mask = outputs["sem_seg"].argmax(0).detach().cpu().numpy()
        transformed = transform(image=np.zeros((512, 512, 3), np.uint8), mask=mask)
        masks = np.array([transformed["mask"]]).reshape([1, size * size]).astype(int)
        predictions = np.vstack((predictions, masks))
    return predictions


class SeedDataset(torch.utils.data.Dataset):
    """The seed B dataset: cv2.imread, DefaultPredictor's resize, float32 CHW on the host."""

    def __init__(self, paths, cfg):
        from detectron2.data import transforms

        self.paths = paths
        self.aug = transforms.ResizeShortestEdge(
            [cfg.INPUT.MIN_SIZE_TEST] * 2, cfg.INPUT.MAX_SIZE_TEST
        )

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, index):
        import cv2

        image = cv2.imread(str(self.paths[index]))
        height, width = image.shape[:2]
        resized = self.aug.get_transform(image).apply_image(image)
        return {
            "image": torch.as_tensor(resized.astype("float32").transpose(2, 0, 1)),
            "height": height,
            "width": width,
        }


def seed_b(config_file, weights, paths, size=256, batch_size=32, workers=4):
    """The seed's BatchPredictor: DataLoader of dicts, model(list), Kornia nearest, vstack."""
    import kornia
    from detectron2.checkpoint import DetectionCheckpointer
    from detectron2.modeling import build_model

    cfg = seed_config(config_file, weights)
    model = build_model(cfg).eval()
    DetectionCheckpointer(model).load(str(weights))
    loader = torch.utils.data.DataLoader(
        SeedDataset(paths, cfg), batch_size=batch_size, num_workers=workers, collate_fn=list
    )
    predictions = np.empty((0, size * size), dtype=np.int64)
    with torch.no_grad():
        for batch in loader:
            for output in model(batch):
                mask = output["sem_seg"].argmax(0).cpu()
                resized = kornia.geometry.transform.resize(
                    mask[None, None].float(), (size, size), interpolation="nearest"
                )
                flat = resized.long().numpy().reshape(1, size * size)
                predictions = np.vstack((predictions, flat))
    return predictions


def model_floor(predictor, paths, batch_size):
    """A function running the model alone over all images, on preloaded model-ready GPU
    batches (decoded, prepared and resized before timing)."""
    size = tuple(decode_rgb(paths[0]).shape[1:])
    batches = []
    for start in range(0, len(paths), batch_size):
        images = [decode_rgb(p) for p in paths[start : start + batch_size]]
        if predictor.prepare:
            images = [predictor.prepare(image) for image in images]
        batches.append(predictor.model_input(torch.stack(images).to(predictor.device)))

    def forward_all():
        for batch in batches:
            predictor.predict_prepared(batch, size)

    forward_all()  # warm-up (cudnn, allocator)
    return forward_all


def input_pipeline(predictor, entries, root, batch_size, workers):
    """A function running the infer stage's input side alone: decode in workers, pin, copy to
    the device, `model_input` there."""

    def load_all():
        loader = shard_loader(entries, root, predictor.prepare, predictor.device, batch_size,
                              workers)  # fmt: skip
        for _, batch, _ in loader:
            predictor.model_input(batch.to(predictor.device, non_blocking=True))

    return load_all


def pixel_agreement(maps_a, maps_b):
    equal = sum(int((a == b).sum()) for a, b in zip(maps_a, maps_b, strict=True))
    return equal / sum(a.size for a in maps_a)


def shard_file_agreement(path_a, path_b):
    return pixel_agreement(read_label_shard(path_a)[1], read_label_shard(path_b)[1])


def infer_job(config_file, weights, shard_path, labels_path, batch_size, workers, options):
    """A fresh process running the infer stage as the rule does (imports, DataLoader workers
    started, model load, inference, label file): (peak RSS MiB, wall seconds, seconds of the
    inference loop as the stage logs it)."""
    settings = dict(weights=str(weights), config_file=str(config_file), num_classes=11, **options)
    program = (
        "import resource, sys\n"
        "from segsubmit.logs import configure_logging\n"
        "from segsubmit.stages import infer_stage\n"
        "configure_logging()\n"
        f"infer_stage({str(shard_path)!r}, {str(labels_path)!r}, 'detectron2', {settings!r}, "
        f"{batch_size}, {workers}, 'error')\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)\n"
    )
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, check=True
    )
    seconds = time.perf_counter() - started
    loop = re.search(r"infer: \d+ images in ([\d.]+) s", result.stderr)
    return float(result.stdout.split()[-1]), seconds, float(loop.group(1))


def snakemake_runs(workdir, config_file, weights, data_root, workers):
    """(cold seconds, no-op seconds, import floor seconds) of the real CLI, one shard."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "bench.yaml").write_text(
        json.dumps(
            {
                "data": {"root": str(data_root), "splits": ["val"], "score": ["val"], "shards": 1},
                "model": {
                    "backend": "detectron2",
                    "weights": str(weights),
                    "config_file": str(config_file),
                },
                "infer": {"batch_size": 32, "workers": workers},
            }
        )
    )
    command = [
        sys.executable, "-m", "snakemake", "--snakefile", str(REPO_ROOT / "Snakefile"),
        "--directory", str(workdir), "--cores", "4", "--resources", "gpu=1",
        "--configfile", str(workdir / "bench.yaml"),
    ]  # fmt: skip
    import_floor, _ = timed_process([sys.executable, "-c", "import torch, detectron2"])
    cold, _ = timed_process(command)
    job_seconds = {
        str(path.relative_to(workdir / "results" / "benchmarks")): float(
            path.read_text().splitlines()[1].split("\t")[0]
        )
        for path in sorted((workdir / "results" / "benchmarks").rglob("*.tsv"))
    }
    print("cold run, seconds per job (Snakemake benchmark files):", json.dumps(job_seconds))
    print((workdir / "results" / "logs" / "infer" / "val" / "0.log").read_text()[-1500:])
    noop, output = timed_process(command)
    assert "Nothing to be done" in output, output
    return cold, noop, import_floor


def timed_process(command):
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"{command} failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}")
    return seconds, result.stdout + result.stderr


class Table:
    """Rows of (what, seconds, ratio to a baseline row, note), printed as they come."""

    def __init__(self):
        self.rows, self.figures = [], {}

    def row(self, name, seconds, baseline=None, note=""):
        self.figures[name] = seconds
        ratio = f"{seconds / self.figures[baseline]:.2f}" if baseline else ""
        self.rows.append(f"| {name} | {seconds:.3f} | {ratio} | {note} |")
        print(self.rows[-1], flush=True)

    def text(self):
        head = "| what | seconds | ratio to its floor | note |\n| --- | --- | --- | --- |\n"
        return head + "\n".join(self.rows)


FLOOR = "model floor fp32 (forward only)"
PRECISIONS = {
    "fp32": {},
    "bf16": {"precision": "bf16"},
    "bf16 + channels_last": {"precision": "bf16", "channels_last": True},
    "fp16": {"precision": "fp16"},
}


def detectron2_rows(table, arguments, work, entries, root, settings):
    """Floors, input pipeline and infer stage per precision, Detectron2 R50-FPN."""
    paths = [root / e["file_name"] for e in entries]
    batch, workers, repeats = arguments.batch_size, arguments.workers, arguments.repeats
    predictors = {
        name: load_predictor("detectron2", PredictorSettings(**settings, **PRECISIONS[name]))
        for name in arguments.precisions
    }
    table.row(FLOOR, median_seconds(model_floor(predictors["fp32"], paths, batch), repeats))
    for name in [name for name in predictors if name.startswith("bf16")]:
        floor = model_floor(predictors[name], paths, batch)
        table.row(f"model floor {name} (forward only)", median_seconds(floor, repeats), FLOOR)
    pipeline = input_pipeline(predictors["fp32"], entries, root, batch, workers)
    pipeline()
    table.row("input pipeline alone (decode, pin, copy, resize)", median_seconds(pipeline,
              repeats), FLOOR, f"{workers} workers")  # fmt: skip
    for name, predictor in predictors.items():
        labels_path = work / f"labels-{name.replace(' ', '')}.npz"

        def run(predictor=predictor, labels_path=labels_path):
            predict_shard_to_file(entries, root, predictor, batch, workers, "error", labels_path)

        run()  # warm-up: worker start-up code paths, cudnn
        agreement = shard_file_agreement(work / "labels-fp32.npz", labels_path)
        table.row(f"infer stage {name}", median_seconds(run, repeats), FLOOR,
                  f"pixels equal to fp32: {agreement:.5f}; {workers} workers")  # fmt: skip
    for count in arguments.worker_sweep:
        labels_path = work / f"labels-workers{count}.npz"

        def run(count=count, labels_path=labels_path):
            predict_shard_to_file(entries, root, predictors["fp32"], batch, count, "error",
                                  labels_path)  # fmt: skip

        table.row(f"infer stage fp32, {count} workers", median_seconds(run, repeats), FLOOR)


def stage_rows(table, arguments, work, json_path):
    """resize (both backends), submission, validation, ground truth and score stages."""
    repeats, labels = arguments.repeats, work / "labels-fp32.npz"
    for backend in ("albumentations", "kornia"):
        args = (labels, work / f"resized-{backend}.npz", backend, [256, 256], "nearest", False)
        resize_stage(*args)
        table.row(f"resize stage ({backend})", median_seconds(lambda a=args: resize_stage(*a),
                                                              repeats))  # fmt: skip
    resized = [work / "resized-albumentations.npz"]
    csv_args = (work / "manifest.json", resized, work / "submission.csv", 11, [256, 256])
    write_seconds = median_seconds(lambda: submission_stage(*csv_args), repeats)
    table.row("submission stage: write", write_seconds,
              note=f"{(work / 'submission.csv').stat().st_size / 1e6:.0f} MB CSV")  # fmt: skip
    validate_args = (work / "submission.csv", work / "manifest.json", work / "valid.json", 11,
                     [256, 256])  # fmt: skip
    table.row("submission stage: re-read check", median_seconds(
        lambda: validate_stage(*validate_args), repeats))  # fmt: skip
    truth = work / "ground_truth.npz"
    truth_args = (json_path, work / "manifest.json", truth, CLASSES, [256, 256])
    table.row("ground truth (once per split and size)", synchronized_seconds(
        lambda: ground_truth_stage(*truth_args))[0])  # fmt: skip
    score_args = (truth, resized, work / "score.json", work / "score.txt", CLASSES, "256x256")
    table.row("score stage", median_seconds(lambda: score_stage(*score_args), repeats))


def seed_rows(table, arguments, work, config_file, weights, paths):
    """The seeds' pipelines on the first `--seed-images` images; time per image vs ours."""
    seed_paths = paths[: arguments.seed_images]
    if not seed_paths:
        return
    ours = read_label_shard(work / "resized-albumentations.npz")[1][: len(seed_paths)]
    per_image_infer = table.figures["infer stage fp32"] / len(paths)
    seeds = {"seed B: batched bs32 + Kornia + vstack": seed_b,
             "seed A: DefaultPredictor + Albumentations + vstack": seed_a}  # fmt: skip
    for name, seed in seeds.items():
        seconds, predictions = synchronized_seconds(
            lambda s=seed: s(config_file, weights, seed_paths)
        )
        agreement = pixel_agreement([p.reshape(256, 256) for p in predictions], ours)
        table.row(f"{name} ({len(seed_paths)} images)", seconds,
                  note=f"{seconds / len(seed_paths) / per_image_infer:.1f}× our infer stage per "
                  f"image; pixels equal to ours: {agreement:.5f}")  # fmt: skip


def torchvision_rows(table, arguments, work, entries, root):
    """A torchvision model (random init): its floor and the infer stage, same images."""
    from segsubmit.backends.torchvision_backend import build_torchvision_model

    architecture = arguments.torchvision_architecture
    weights = work / f"{architecture}.pt"
    torch.save(build_torchvision_model(architecture, len(CLASSES)).state_dict(), weights)
    predictor = load_predictor(
        "torchvision",
        PredictorSettings(weights=str(weights), num_classes=11, architecture=architecture),
    )
    paths = [root / e["file_name"] for e in entries]
    floor_name = f"{architecture} floor fp32 (forward only)"
    floor = model_floor(predictor, paths, arguments.batch_size)
    table.row(floor_name, median_seconds(floor, arguments.repeats))

    def run():
        predict_shard_to_file(entries, root, predictor, arguments.batch_size, arguments.workers,
                              "error", work / "labels-torchvision.npz")  # fmt: skip

    run()
    table.row(f"{architecture} infer stage fp32", median_seconds(run, arguments.repeats),
              floor_name)  # fmt: skip


def demo_precision_rows(table, arguments, work):
    """mIoU of the trained demo model per precision on a held-out synthetic demo split."""
    root = work / "demo"
    json_path = root / "val.json"
    make_demo_dataset(root, {"val": json_path}, {"val": arguments.demo_images}, 1, 512, CLASSES)
    entries = build_manifest(json_path, root, CLASSES, 1)
    coco_api, class_of_category = load_ground_truth(json_path, CLASSES)
    truths = [rasterize_ground_truth(coco_api, e["id"], class_of_category) for e in entries]
    maps = {}
    for name in [name for name in arguments.precisions if name in ("fp32", "bf16", "fp16")]:
        predictor = load_predictor("torchvision", PredictorSettings(
            weights=str(arguments.demo_weights), num_classes=11,
            architecture="lraspp_mobilenet_v3_large", **PRECISIONS[name]))  # fmt: skip
        maps[name] = predict_shard(entries, root, predictor, arguments.batch_size, 4)
        miou = score_images(truths, maps[name], len(CLASSES))["miou"]
        table.figures[f"demo mIoU {name}"] = miou
        note = f"pixels equal to fp32: {pixel_agreement(maps['fp32'], maps[name]):.5f}"
        if name != "fp32":
            note += f"; mIoU − fp32: {miou - table.figures['demo mIoU fp32']:+.5f}"
        table.rows.append(f"| demo model mIoU {name} ({len(entries)} images) | {miou:.4f} | | "
                          f"{note} |")  # fmt: skip
        print(table.rows[-1], flush=True)


def job_rows(table, arguments, work, config_file, weights):
    """The infer job as the rule runs it, per precision: its inference loop (DataLoader workers
    already started while the model loaded) against the floor; median of `--job-repeats`."""
    for name in arguments.precisions:
        runs = [infer_job(config_file, weights, work / "shard.json", work / "job.npz",
                          arguments.batch_size, arguments.workers, PRECISIONS[name])
                for _ in range(arguments.job_repeats)]  # fmt: skip
        loop = statistics.median(run[2] for run in runs)
        wall = statistics.median(run[1] for run in runs)
        table.row(f"infer job {name}: inference loop", loop, FLOOR,
                  f"fresh process, {arguments.workers} workers; whole process {wall:.1f} s "
                  "(imports, CUDA, model load)")  # fmt: skip


def memory_rows(table, arguments, work, config_file, weights):
    """Peak RSS of the infer job at N and memory_factor x N images."""
    shard_big = work / "big" / "shard.json"
    big_json = replicate_dataset(work / "big", arguments.images * arguments.memory_factor)
    big_entries = build_manifest(big_json, big_json.parent, CLASSES, 1)
    write_manifest(big_entries, work / "big" / "manifest.json", [shard_big], big_json.parent)
    for count, shard in ((arguments.images, work / "shard.json"),
                         (len(big_entries), shard_big)):  # fmt: skip
        rss, seconds, _ = infer_job(config_file, weights, shard, work / "rss.npz",
                                    arguments.batch_size, arguments.workers, {})  # fmt: skip
        table.figures[f"peak RSS infer {count} images (MiB)"] = rss
        table.figures[f"infer job {count} images (s)"] = seconds
        note = f"fresh process: {seconds:.1f} s with imports and model load"
        table.rows.append(f"| peak host RSS, infer job, {count} images | {rss:.0f} MiB || {note} |")
        print(table.rows[-1], flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=819)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=12)
    parser.add_argument("--worker-sweep", type=int, nargs="*", default=[], metavar="N",
                        help="also time the fp32 infer stage with N workers")  # fmt: skip
    parser.add_argument("--seed-images", type=int, default=819, help="0: skip the seeds")
    parser.add_argument("--memory-factor", type=int, default=10, help="0: skip the memory rows")
    parser.add_argument("--torchvision-architecture", default="deeplabv3_resnet50",
                        help="'' skips the torchvision rows")  # fmt: skip
    parser.add_argument("--job-repeats", type=int, default=3,
                        help="fresh-process infer jobs per precision (0: skip)")  # fmt: skip
    parser.add_argument("--demo-weights", type=Path, help="the trained demo model (state dict)")
    parser.add_argument("--demo-images", type=int, default=200)
    parser.add_argument(
        "--precisions", nargs="+", default=list(PRECISIONS), choices=list(PRECISIONS),
        help="infer variants (fp32 first); fp16 autocast on a CPU takes minutes an image",
    )  # fmt: skip
    parser.add_argument("--skip-snakemake", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("bench-out"))
    arguments = parser.parse_args()
    out, work = arguments.out, Path(os.environ.get("BENCH_WORK", "/tmp/segsubmit-bench"))
    shutil.rmtree(work, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    (work / "model").mkdir(parents=True)
    config_file, weights = write_detectron2_model(work / "model")
    json_path = replicate_dataset(work / "data", arguments.images)
    root = json_path.parent
    entries = build_manifest(json_path, root, CLASSES, 1)
    write_manifest(entries, work / "manifest.json", [work / "shard.json"], root)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    print(f"{len(entries)} images on {device}", flush=True)
    torch.set_num_threads(2)  # as the infer rule runs on CUDA (stages.infer_stage)
    table = Table()
    settings = {"weights": str(weights), "config_file": str(config_file), "num_classes": 11}
    detectron2_rows(table, arguments, work, entries, root, settings)
    stage_rows(table, arguments, work, json_path)
    if not arguments.skip_snakemake:
        cold, noop, import_floor = snakemake_runs(work / "run", config_file, weights, root,
                                                  arguments.workers)  # fmt: skip
        table.row("import floor: python -c 'import torch, detectron2'", import_floor)
        budget = import_floor + 1.15 * table.figures[FLOOR] + 5
        table.row("snakemake --cores 4 --resources gpu=1, cold", cold,
                  note=f"target ≤ {budget:.1f} s")  # fmt: skip
        table.row("snakemake, no-op rerun", noop, note="target ≤ 3 s")
    if arguments.job_repeats:
        job_rows(table, arguments, work, config_file, weights)
    if arguments.memory_factor:
        memory_rows(table, arguments, work, config_file, weights)
    if arguments.torchvision_architecture:
        torchvision_rows(table, arguments, work, entries, root)
    if arguments.demo_weights:
        demo_precision_rows(table, arguments, work)
    seed_rows(table, arguments, work, config_file, weights, [root / e["file_name"]
                                                              for e in entries])  # fmt: skip
    print(f"\n{len(entries)} images, {device}\n{table.text()}")
    (out / "figures.json").write_text(json.dumps(table.figures, indent=1))


if __name__ == "__main__":
    main()
