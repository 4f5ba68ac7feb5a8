"""One table: the seed's pipelines vs this workflow, same model, same images, same run.

Rows: (1) seed A, per-image DefaultPredictor + Albumentations + np.vstack; (2) seed B, batched
predictor (bs 32, 4 workers) + Kornia + np.vstack; (3) the model's forward pass alone on
preloaded GPU tensors (the floor); (4) this workflow's infer (fp32, bf16, bf16 + channels_last),
resize (both backends), submission and score stages; (5) the whole `snakemake` run, cold and as a
no-op rerun; plus peak host memory of the infer job at N and 10 N images, and a torchvision row.

    PYTHONPATH=$PWD/.deps/detectron2 python bench/gpu_bench.py --images 819 --out bench-out
"""

import argparse
import json
import os
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
from segsubmit.infer import predict_shard_to_file  # noqa: E402
from segsubmit.labels import read_label_shard  # noqa: E402
from segsubmit.manifest import build_manifest, write_manifest  # noqa: E402
from segsubmit.stages import (  # noqa: E402
    ground_truth_stage,
    resize_stage,
    score_stage,
    submission_stage,
    validate_stage,
)  # noqa: E402


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


def seed_a(config_file, weights, paths, size=256):
    """The seed's per-image loop (dummy image HWC, as current Albumentations requires)."""
    import albumentations as A
    import cv2
    from detectron2.config import get_cfg
    from detectron2.engine import DefaultPredictor

    cfg = get_cfg()
    cfg.merge_from_file(str(config_file))
    cfg.MODEL.WEIGHTS = str(weights)
    predictor = DefaultPredictor(cfg)
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
    from detectron2.config import get_cfg
    from detectron2.modeling import build_model

    cfg = get_cfg()
    cfg.merge_from_file(str(config_file))
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
    """Seconds of the model alone on preloaded, already-prepared GPU tensors (fp32)."""
    from segsubmit.images import decode_rgb

    prepared = [predictor.prepare(decode_rgb(p)).to(predictor.device) for p in paths]
    height, width = 512, 512

    def forward_all():
        for start in range(0, len(prepared), batch_size):
            predictor.predict(torch.stack(prepared[start : start + batch_size]), (height, width))

    forward_all()  # warm-up (cudnn autotuning, allocator)
    return forward_all


def infer_to_file(predictor, entries, root, labels_path, batch_size, workers):
    return lambda: predict_shard_to_file(
        entries, root, predictor, batch_size, workers, "error", labels_path
    )


def pixel_agreement(path_a, path_b):
    _, maps_a = read_label_shard(path_a)
    _, maps_b = read_label_shard(path_b)
    equal = sum(int((a == b).sum()) for a, b in zip(maps_a, maps_b, strict=True))
    return equal / sum(a.size for a in maps_a)


def peak_rss_of_infer(config_file, weights, shard_path, labels_path, batch_size, workers):
    """Peak resident memory (MiB) of a fresh process running the infer stage."""
    program = (
        "import resource, sys\n"
        "from segsubmit.stages import infer_stage\n"
        f"infer_stage({str(shard_path)!r}, {str(labels_path)!r}, 'detectron2', "
        f"dict(weights={str(weights)!r}, config_file={str(config_file)!r}, num_classes=11), "
        f"{batch_size}, {workers}, 'error')\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, check=True
    )
    return float(result.stdout.split()[-1])


def snakemake_runs(workdir, config_file, weights, data_root):
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
                "infer": {"batch_size": 32, "workers": 12},
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


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=819)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=12)
    parser.add_argument("--skip-seed-a", action="store_true")
    parser.add_argument("--seed-images", type=int, default=819, help="0: skip the seeds")
    parser.add_argument("--memory-factor", type=int, default=10, help="0: skip the memory rows")
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
    paths = [root / e["file_name"] for e in entries]
    write_manifest(entries, work / "manifest.json", [work / "shard.json"], root)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    rows, figures = [], {"images": len(entries), "device": device}

    def row(name, seconds, baseline=None, note=""):
        figures[name] = seconds
        ratio = f"{seconds / figures[baseline]:.2f}" if baseline else ""
        rows.append(f"| {name} | {seconds:.3f} | {ratio} | {note} |")
        print(rows[-1], flush=True)

    settings = {"weights": str(weights), "config_file": str(config_file), "num_classes": 11}
    fp32 = load_predictor("detectron2", PredictorSettings(**settings))
    row(
        "model floor fp32 (forward only)",
        median_seconds(model_floor(fp32, paths, arguments.batch_size), arguments.repeats),
    )
    variants = {
        "fp32": fp32,
        "bf16": load_predictor("detectron2", PredictorSettings(**settings, precision="bf16")),
        "bf16 + channels_last": load_predictor(
            "detectron2",
            PredictorSettings(**settings, precision="bf16", channels_last=True),
        ),
        f"fp32, {os.cpu_count()} main threads": fp32,
    }
    for name, predictor in variants.items():
        # as the infer rule runs on CUDA: 2 intra-op threads in the main process
        torch.set_num_threads(os.cpu_count() if name.endswith("main threads") else 2)
        labels_path = work / f"labels-{name.replace(' ', '')}.npz"
        run = infer_to_file(predictor, entries, root, labels_path, arguments.batch_size,
                            arguments.workers)  # fmt: skip
        run()  # warm-up: worker start-up code paths, cudnn
        agreement = pixel_agreement(work / "labels-fp32.npz", labels_path)
        row(
            f"infer stage {name}",
            median_seconds(run, arguments.repeats),
            "model floor fp32 (forward only)",
            f"pixels equal to fp32: {agreement:.5f}",
        )
    labels = work / "labels-fp32.npz"
    for backend in ("albumentations", "kornia"):
        resized = work / f"resized-{backend}.npz"
        args = (labels, resized, backend, [256, 256], "nearest", False)
        resize_stage(*args)
        row(f"resize stage ({backend})", median_seconds(lambda a=args: resize_stage(*a),
                                                        arguments.repeats))  # fmt: skip
    resized = [work / "resized-albumentations.npz"]
    csv_args = (work / "manifest.json", resized, work / "submission.csv", 11, [256, 256])
    row(
        "submission stage",
        median_seconds(lambda: submission_stage(*csv_args), arguments.repeats),
        note=f"{(work / 'submission.csv').stat().st_size / 1e6:.0f} MB CSV",
    )
    validate_args = (work / "submission.csv", work / "manifest.json", work / "valid.json", 11,
                     [256, 256])  # fmt: skip
    row("validate_submission (re-read)", median_seconds(lambda: validate_stage(*validate_args),
                                                        arguments.repeats))  # fmt: skip
    truth = work / "ground_truth.npz"
    truth_args = (json_path, work / "manifest.json", truth, CLASSES, [256, 256])
    row("ground truth (once per split and size)", synchronized_seconds(
        lambda: ground_truth_stage(*truth_args))[0])  # fmt: skip
    score_args = (truth, resized, work / "score.json", work / "score.txt", CLASSES, "256x256")
    row("score stage", median_seconds(lambda: score_stage(*score_args), arguments.repeats))
    seed_paths = paths[: arguments.seed_images]
    per_image_floor = figures["model floor fp32 (forward only)"] / len(entries)
    seeds = {
        "seed B: batched bs32 + Kornia + vstack": seed_b,
        "seed A: DefaultPredictor + Albumentations + vstack": seed_a,
    }
    for name, seed in seeds.items():
        if not seed_paths or (name.startswith("seed A") and arguments.skip_seed_a):
            continue
        seconds, predictions = synchronized_seconds(
            lambda s=seed: s(config_file, weights, seed_paths)
        )
        ours = np.stack(read_label_shard(work / "resized-albumentations.npz")[1])
        same = np.array_equal(predictions, ours[: len(seed_paths)].reshape(len(seed_paths), -1))
        row(
            f"{name} ({len(seed_paths)} images)",
            seconds,
            note=f"{seconds / len(seed_paths) / per_image_floor:.1f}× the floor per image; "
            f"same masks as ours: {same}",
        )
    cold, noop, import_floor = snakemake_runs(work / "run", config_file, weights, root)
    row("import floor: python -c 'import torch, detectron2'", import_floor)
    budget = import_floor + 1.15 * figures["model floor fp32 (forward only)"] + 5
    row("snakemake --cores 4 --resources gpu=1, cold", cold, note=f"target ≤ {budget:.1f} s")
    row("snakemake, no-op rerun", noop)
    if arguments.memory_factor:
        memory_rows(arguments, work, config_file, weights, entries, rows, figures)
    print("\n| what | seconds | ratio to model floor | note |\n| --- | --- | --- | --- |")
    print("\n".join(rows))
    (out / "figures.json").write_text(json.dumps(figures, indent=1))


def memory_rows(arguments, work, config_file, weights, entries, rows, figures):
    """Peak RSS of the infer job at N and memory_factor x N images."""
    shard_big = work / "big" / "shard.json"
    big_json = replicate_dataset(work / "big", arguments.images * arguments.memory_factor)
    big_entries = build_manifest(big_json, big_json.parent, CLASSES, 1)
    write_manifest(big_entries, work / "big" / "manifest.json", [shard_big], big_json.parent)
    for name, shard in ((f"{len(entries)}", work / "shard.json"),
                        (f"{len(big_entries)}", shard_big)):  # fmt: skip
        rss = peak_rss_of_infer(config_file, weights, shard, work / "rss.npz",
                                arguments.batch_size, arguments.workers)  # fmt: skip
        figures[f"peak RSS infer {name} images (MiB)"] = rss
        rows.append(f"| peak host RSS, infer job, {name} images | {rss:.0f} MiB | | |")
        print(rows[-1], flush=True)


if __name__ == "__main__":
    main()
