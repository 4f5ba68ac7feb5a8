"""Ensembles on the device: K SMP members x T TTA views (flips [h] x scales [0.75, 1, 1.25]),
random init, 11 classes, 512² JPEGs. Rows (median wall seconds):

- floors: each member's bare forward passes over every view of every image (the model alone on
  preloaded device batches, a view's flips stacked as the TTA predictor stacks them); their sum
  is the ideal K x T cost.
- as built: the workflow runs one infer job per member, so each member decodes every image
  itself; the sum of K in-process infer stage loops (TTA, labels + fp16 probabilities at 256²
  streamed to files).
- shared job (`ensemble.infer_jobs: shared`, the infer_members job's loop in-process): one
  decode per image, every member's TTA predictor on each batch, each member's labels and
  probabilities streamed to its files; the same job writing labels alone; and the same loop
  with nothing written (what the files cost). The files go under TMPDIR.
- ttach: `ttach.SegmentationTTAWrapper(merge_mode="mean")` against our TTA predictor
  (`logit_mean`, the merge it equals) on the same SMP model and preloaded batches.

Every job row is its loop from the loader's first batch (`rows_phases.from_first_batch`): an
infer job starts its workers before it loads its models, so it overlaps their start; the wait
for a fresh loader's first batch is its own row.

    TMPDIR=/dev/shm/t python bench/ensemble_bench.py --images 819 --batch-size 16 --workers 8
    python bench/ensemble_bench.py --cpu-smoke     # 4 images 64², 2 members, CPU: runs anywhere
"""

import argparse
import tempfile
from pathlib import Path

import torch
from backends_bench import smooth_images
from rows_infer import loaded
from rows_phases import from_first_batch
from timing import seconds

from segsubmit.images import decode_rgb
from segsubmit.infer import (
    ModelJob,
    batch_predictions,
    predict_shard_to_file,
    predict_to_files,
    shard_loader,
)
from segsubmit.manifest import build_manifest
from segsubmit.probabilities import ProbabilityOutputs
from segsubmit.settings import TTASettings
from segsubmit.testing import CLASSES, NUM_CLASSES
from segsubmit.tta import TTAPredictor, flip_combinations, scaled


def smp_members(folder, count, encoder):
    """`count` SMP Unet state dicts (seeds 0..count-1) and their backend options."""
    from segsubmit.backends.smp_model import build_smp_model

    paths = []
    for seed in range(count):
        torch.manual_seed(seed)
        paths.append(folder / f"member{seed}.pt")
        torch.save(build_smp_model("Unet", encoder, NUM_CLASSES).state_dict(), paths[-1])
    return paths, {"architecture": "Unet", "encoder": encoder}


def preloaded(predictor, transform, paths, batch_size):
    """Model-ready device batches of every image (decoded before timing)."""
    batches = []
    for start in range(0, len(paths), batch_size):
        images = [decode_rgb(path) for path in paths[start : start + batch_size]]
        images = [transform(image) for image in images] if transform else images
        batches.append(predictor.model_input(torch.stack(images).to(predictor.device)))
    return batches


def view_floor(predictor, batches, tta):
    """A function running the bare model on every view (flips stacked per scale) of every
    batch, nothing merged or resized back."""
    combinations = flip_combinations(tta.flips)

    @torch.inference_mode()
    def forward_all():
        for batch in batches:
            for scale in tta.scales:
                views = scaled(batch, scale)
                predictor.logits(torch.cat([v.flip(d) if d else v for d in combinations
                                            for v in [views]]))  # fmt: skip

    forward_all()
    return forward_all


def member_loop(predictor, entries, batch, workers, folder, outputs_for):
    """One member's infer stage loop in-process (labels + probabilities to `folder`)."""

    def run(batches):
        predict_shard_to_file(batches, entries, predictor, batch, workers, "error",
                              folder / "labels.npz", outputs_for(folder))  # fmt: skip

    return run


def shared_loop(members, entries, batch, workers, folder, outputs_for):
    """The shared infer job's loop in-process: one decode per image for every member
    (`members`: (predictor, transform), one transform for all), each member's labels and
    probabilities to its own files."""
    jobs = []
    for index, (predictor, _) in enumerate(members):
        (folder / f"member{index}").mkdir(parents=True)
        outputs = outputs_for(folder / f"member{index}")
        jobs.append(ModelJob(predictor, folder / f"member{index}" / "labels.npz", outputs))
    return lambda batches: predict_to_files(batches, entries, jobs, batch, workers, "error")


def nothing_written(members, entries, size):
    """The shared job's loop (labels and probabilities to the host) with nothing written."""
    outputs = ProbabilityOutputs(probabilities="unused", size=size)
    jobs = [ModelJob(predictor, None, outputs) for predictor, _ in members]

    def run(batches):
        for _ in batch_predictions(batches, entries, jobs, "error"):
            pass

    return run


def ttach_and_ours(predictor, batches, tta, size):
    """(ttach function, ours function) over the preloaded batches, logit means both."""
    import ttach

    transforms = [ttach.HorizontalFlip()] if "h" in tta.flips else []
    transforms.append(ttach.Scale(list(tta.scales), interpolation="bilinear", align_corners=False))
    wrapper = ttach.SegmentationTTAWrapper(predictor.module, ttach.Compose(transforms), "mean")
    ours = TTAPredictor(predictor, TTASettings(tta.flips, tta.scales, "logit_mean"))

    @torch.inference_mode()
    def theirs_all():
        for batch in batches:
            wrapper((batch.float() - predictor.mean) / predictor.std).argmax(1)

    @torch.inference_mode()
    def ours_all():
        for batch in batches:
            ours.predict_prepared(batch, size)

    theirs_all(), ours_all()
    return theirs_all, ours_all


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=819)
    parser.add_argument("--members", type=int, default=3)
    parser.add_argument("--encoder", default="resnet34")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cpu-smoke", action="store_true", help="4 images 64², 2 members, CPU")
    arguments = parser.parse_args()
    side, scales, device = 512, (0.75, 1.0, 1.25), "cuda" if torch.cuda.is_available() else "cpu"
    if arguments.cpu_smoke:
        arguments.images, arguments.members, arguments.encoder = 4, 2, "resnet18"
        arguments.batch_size, arguments.workers, arguments.repeats = 2, 0, 1
        side, scales, device = 64, (0.5, 1.0), "cpu"
    tta = TTASettings(("h",), scales, "prob_mean")
    work = Path(tempfile.mkdtemp(prefix="ensemble-bench-"))
    json_path = smooth_images(work / "data", arguments.images, size=side)
    entries = build_manifest(json_path, work / "data", CLASSES, 1).images
    paths = [work / "data" / entry.path for entry in entries]
    size = (side // 2, side // 2)
    weights, options = smp_members(work, arguments.members, arguments.encoder)
    bare = [loaded("smp", path, device=device, **options) for path in weights]
    members = [(TTAPredictor(predictor, tta), transform) for predictor, transform in bare]
    batch, workers, repeats = arguments.batch_size, arguments.workers, arguments.repeats

    def outputs_for(folder):
        return ProbabilityOutputs(probabilities=str(folder / "probabilities.npz"), size=size)

    batches = preloaded(*bare[0], paths, batch)
    floors = sum(seconds(view_floor(p, batches, tta), repeats) for p, _ in bare)
    root = work / "data"

    def timed_loop(run_batches, transform=members[0][1]):
        """(first-batch wait, loop from the first batch) of `run_batches` on a fresh loader."""

        def make_loader():
            return shard_loader(entries, root, transform, bare[0][0].device, batch, workers)

        return from_first_batch(make_loader, run_batches, repeats)

    separate = 0.0
    for index, (predictor, transform) in enumerate(members):
        (work / f"member{index}").mkdir()
        loop = member_loop(predictor, entries, batch, workers, work / f"member{index}", outputs_for)
        separate += timed_loop(loop, transform)[1]
    wait, shared = timed_loop(shared_loop(members, entries, batch, workers, work / "shared",
                                          outputs_for))  # fmt: skip
    labels_only = timed_loop(shared_loop(members, entries, batch, workers, work / "labels-only",
                                         lambda _: None))[1]  # fmt: skip
    loop_only = timed_loop(nothing_written(members, entries, size))[1]
    theirs, ours = (
        seconds(f, repeats) for f in ttach_and_ours(bare[0][0], batches, tta, (side,) * 2)
    )
    rows = [
        (f"sum of forward floors ({arguments.members} members x {tta.views} views)", floors, ""),
        (
            "infer_jobs per_member: one infer job per member (each decodes)",
            separate,
            separate / floors,
        ),
        ("infer_jobs shared: one job, one decode for all members", shared, shared / floors),
        ("  a fresh loader's first batch (before the loop; the job overlaps it)", wait, ""),
        ("  the shared job writing labels alone", labels_only, labels_only / floors),
        ("  the shared job's loop with nothing written", loop_only, loop_only / floors),
        ("ttach.SegmentationTTAWrapper, one member", theirs, theirs / ours),
        ("ours: TTAPredictor logit_mean, one member", ours, ""),
    ]
    print(f"\n{len(paths)} images {side}², {device}, {arguments.members} SMP Unet-"
          f"{arguments.encoder}, flips [h] x scales {list(scales)}, batch {batch}, {workers} "
          f"workers, median of {repeats}, work folder {work}")  # fmt: skip
    print("| what | seconds | ratio |\n| --- | --- | --- |")
    for name, value, ratio in rows:  # ratios: to the floors; ttach's to ours
        print(f"| {name} | {value:.3f} | {f'{ratio:.2f}×' if ratio else ''} |")


if __name__ == "__main__":
    main()
