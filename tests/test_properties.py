"""Property: any valid COCO manifest (odd sizes, unicode names, many or empty shards) goes
through manifest -> resize -> submission -> validator without an invalid CSV or a crash."""

import json

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from segsubmit.labels import write_label_shard
from segsubmit.manifest import manifest_stage, read_manifest
from segsubmit.resize import resize_stage
from segsubmit.submission import validate_stage, write_submission_stage
from segsubmit.testing import CLASSES

NAME_CHARACTERS = st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="/\\")
FILE_NAMES = st.text(NAME_CHARACTERS, min_size=1, max_size=12).filter(
    lambda name: name not in (".", "..") and len(name.encode()) < 200
)
IMAGES = st.lists(
    st.tuples(FILE_NAMES, st.integers(1, 37), st.integers(1, 37)),
    min_size=1,
    max_size=12,
    unique_by=lambda image: image[0],
)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    images=IMAGES,
    shard_count=st.integers(1, 9),
    out_size=st.tuples(st.integers(1, 20), st.integers(1, 20)),
    backend=st.sampled_from(["albumentations", "kornia"]),
    seed=st.integers(0, 99),
)
def test_pipeline_always_gives_a_valid_csv(
    tmp_path_factory, images, shard_count, out_size, backend, seed
):
    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(seed)
    coco = {"images": [], "categories": [{"id": 1, "name": "Paper"}], "annotations": []}
    for image_id, (name, height, width) in enumerate(images):
        file_name = f"d/{name}.png"
        (root / "d").mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (height, width, 3), np.uint8)).save(root / file_name)
        coco["images"].append(
            {"id": image_id * 7 + 3, "file_name": file_name, "width": width, "height": height}
        )
    (root / "val.json").write_text(json.dumps(coco, ensure_ascii=False), encoding="utf-8")
    out = tmp_path_factory.mktemp("results")
    shard_paths = [out / f"shards/{k}.json" for k in range(shard_count)]
    manifest_stage(root / "val.json", root, CLASSES, out / "manifest.json", shard_paths)
    resized_paths = []
    for shard_path in shard_paths:
        entries = read_manifest(shard_path)
        maps = [rng.integers(0, 11, (e["height"], e["width"]), np.uint8) for e in entries]
        write_label_shard(out / f"{shard_path.stem}.labels.npz", [e["id"] for e in entries], maps)
        resized_paths.append(out / f"{shard_path.stem}.resized.npz")
        resize_stage(
            out / f"{shard_path.stem}.labels.npz",
            resized_paths[-1],
            backend,
            list(out_size),
            "nearest",
            False,
        )
    write_submission_stage(
        out / "manifest.json", resized_paths, out / "submission.csv", 11, list(out_size)
    )
    validate_stage(
        out / "submission.csv", out / "manifest.json", out / "valid.json", 11, list(out_size)
    )
    assert json.loads((out / "valid.json").read_text())["rows"] == len(images)
