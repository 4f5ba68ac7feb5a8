"""Build the manifest: the validated, ordered image list of one split, split into shards."""

import hashlib
import logging
import os
import zlib
from collections import Counter
from pathlib import Path

from .atomic import write_json
from .coco import load_coco, read_json_or_none, safe_relative_path, validate_coco
from .errors import SegsubmitError

log = logging.getLogger(__name__)


def shard_of(file_name, shard_count):
    """Stable shard index of an image: adding images never moves existing ones."""
    return zlib.crc32(file_name.encode("utf-8")) % shard_count


def file_digest(path):
    """sha1 of a file's bytes: a changed image changes its shard file, so that shard reruns."""
    return hashlib.sha1(Path(path).read_bytes()).hexdigest()


def image_path(data_root, json_path, file_name):
    """Absolute path of an image (symlinks resolved), checked to exist inside `data_root`."""
    root = Path(data_root).resolve()
    path = (root / safe_relative_path(json_path, file_name)).resolve()
    if not path.is_relative_to(root):
        raise SegsubmitError(f"{json_path}: file_name {file_name!r} resolves outside {data_root}")
    if not path.is_file():
        raise SegsubmitError(
            f"{json_path}: lists {file_name!r} but {path} does not exist; fix data.root or the json"
        )
    return path


def image_fingerprint(json_path, data_root):
    """Digest of (file_name, size, mtime) of every image a COCO json lists, for the manifest
    rule's params: a changed, added or removed image reruns the manifest (which then hashes the
    images' bytes) without making each image a Snakemake input (819 inputs cost the no-op run
    more than the stats); '' if the json can't be read: the manifest stage reports why."""
    try:
        names = [image["file_name"] for image in read_json_or_none(json_path)["images"]]
    except (KeyError, TypeError, AttributeError):
        return ""
    digest = hashlib.sha1()
    for name in names:
        try:
            stat = os.stat(os.path.join(data_root, str(name)))
            digest.update(f"{name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        except (OSError, ValueError):
            digest.update(f"{name}\0missing\n".encode())
    return digest.hexdigest()


def build_manifest(
    json_path, data_root, class_names, shard_count, category_map=None, max_pixels=None
):
    """Manifest entries in json order: id, file_name, width, height, shard, sha1 and `path`,
    the file the manifest resolved and hashed, relative to `data_root`: the one later stages
    open. Categories are renamed with `category_map`; images above `max_pixels` are refused."""
    coco = load_coco(json_path)
    validate_coco(json_path, coco, class_names, category_map, max_pixels)
    root = Path(data_root).resolve()
    entries = []
    for image in coco["images"]:
        path = image_path(data_root, json_path, image["file_name"])
        entries.append(
            {
                "id": image["id"],
                "file_name": image["file_name"],
                "path": path.relative_to(root).as_posix(),
                "width": image["width"],
                "height": image["height"],
                "shard": shard_of(image["file_name"], shard_count),
                "sha1": file_digest(path),
            }
        )
    return entries


def write_manifest(entries, manifest_path, shard_paths, data_root):
    """Write the full manifest and one small file per shard (so shards rerun independently)."""
    write_json(manifest_path, {"data_root": str(data_root), "images": entries})
    for shard_index, shard_path in enumerate(shard_paths):
        shard_entries = [entry for entry in entries if entry["shard"] == shard_index]
        write_json(shard_path, {"data_root": str(data_root), "images": shard_entries})


def read_manifest(path):
    """The `images` list of a manifest or shard file."""
    return load_coco(path)["images"]


def manifest_file_names(path):
    """The file_names of a manifest written by the workflow, in order; one line if the file is
    shaped otherwise (e.g. a COCO json or a list passed by mistake)."""
    manifest = load_coco(path)
    images = manifest.get("images") if isinstance(manifest, dict) else None
    if not isinstance(images, list) or not all(
        isinstance(image, dict) and isinstance(image.get("file_name"), str) for image in images
    ):
        raise SegsubmitError(
            f'{path}: not a segsubmit manifest (expected {{"images": [{{"file_name": ...}}, '
            f"...]}}, found {type(manifest).__name__} {str(manifest)[:60]!r}); pass "
            "results/<split>/manifest.json"
        )
    return [image["file_name"] for image in images]


def manifest_stage(
    json_path,
    data_root,
    class_names,
    manifest_path,
    shard_paths,
    category_map=None,
    max_image_pixels=None,
):
    """Stage entry: validate the COCO json and its image files (categories renamed with
    `category_map`, images up to `max_image_pixels`); write manifest + shard files."""
    entries = build_manifest(
        json_path, data_root, class_names, len(shard_paths), category_map, max_image_pixels
    )
    write_manifest(entries, manifest_path, shard_paths, data_root)
    sizes = Counter(entry["shard"] for entry in entries)
    log.info(
        "manifest: %d images from %s in %d shards (sizes %s)",
        len(entries),
        json_path,
        len(shard_paths),
        [sizes[shard] for shard in range(len(shard_paths))],
    )
