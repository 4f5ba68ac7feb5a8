"""The submission job before and after per-shard row fragments, on synthetic resized maps: no
model, no GPU.

Before: the submission stage encodes every row, writes the CSV and re-reads it (what its job did
alone). After: each resize job encodes and checks its shard's rows (`fragments.write_fragments`,
timed per shard: it runs as each shard is resized), the submission stage gathers them and
re-reads the file. Both CSVs are compared byte for byte.

    python bench/submission_cpu.py --images 4000 --shards 4 --threads 2
"""

import argparse
import json
import tempfile
from pathlib import Path

from stages_cpu import blob_maps
from timing import Table, seconds

from segsubmit.fragments import write_fragments
from segsubmit.labels import write_label_shard
from segsubmit.manifest import shard_of
from segsubmit.submission import submission_stage
from segsubmit.testing import CLASSES, save_manifest

SIZE = (256, 256)
FORMAT = "competition_csv"


def resized_shards(work, count, shards):
    """(manifest, resized shard paths) of `count` blob maps at SIZE, sharded as the workflow
    shards them."""
    names = [f"batch_0{i % 3 + 1}_vt/{i:05d}.jpg" for i in range(count)]
    maps = blob_maps(count, size=SIZE[0])
    paths = []
    for shard in range(shards):
        ids = [i for i, name in enumerate(names) if shard_of(name, shards) == shard]
        paths.append(work / f"{shard}.npz")
        write_label_shard(paths[-1], ids, [maps[i] for i in ids])
    return save_manifest(work / "manifest.json", names, SIZE), paths


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    add = parser.add_argument
    add("--images", type=int, default=4000)
    add("--shards", type=int, default=4)
    add("--threads", type=int, default=2)
    add("--repeats", type=int, default=3)
    add("--out", type=Path, default=None, help="folder for submission_cpu.json")
    arguments = parser.parse_args()
    work = Path(tempfile.mkdtemp())
    manifest, resized = resized_shards(work, arguments.images, arguments.shards)
    fragments = [work / f"{shard}.{FORMAT}.rows" for shard in range(arguments.shards)]

    def stage(name, with_fragments):
        submission_stage(manifest, resized, {FORMAT: work / name}, work / f"{name}.json", CLASSES,
                         SIZE, threads=arguments.threads,
                         fragments={FORMAT: fragments} if with_fragments else None)  # fmt: skip

    table = Table()
    print(
        f"{arguments.images} maps of {SIZE}, {arguments.shards} shards, {arguments.threads} threads"
    )
    before = seconds(lambda: stage("before.csv", False), arguments.repeats)
    table.row("before: submission job (encode, write, re-read check)", before)
    encode = [
        seconds(lambda path=path, fragment=fragment: write_fragments(
            path, {FORMAT: fragment}, CLASSES, SIZE, arguments.threads), arguments.repeats)
        for path, fragment in zip(resized, fragments, strict=True)
    ]  # fmt: skip
    table.row("after: each resize job's fragment (encode, decode check), longest shard",
              max(encode), note=f"all shards: {sum(encode):.2f} s")  # fmt: skip
    after = seconds(lambda: stage("after.csv", True), arguments.repeats)
    table.row("after: submission job (gather, re-read check)", after,
              "before: submission job (encode, write, re-read check)")  # fmt: skip
    same = (work / "before.csv").read_bytes() == (work / "after.csv").read_bytes()
    size_mb = (work / "after.csv").stat().st_size / 1e6
    table.row("submission.csv size", size_mb, unit="MB", note=f"byte-identical: {same}")
    assert same, "the gathered CSV differs from the one-pass writer's"
    print(f"\n{table.text()}")
    if arguments.out:
        arguments.out.mkdir(parents=True, exist_ok=True)
        (arguments.out / "submission_cpu.json").write_text(json.dumps(table.figures, indent=1))


if __name__ == "__main__":
    main()
