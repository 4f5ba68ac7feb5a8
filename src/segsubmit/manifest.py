"""Build the manifest: the validated, ordered image list of one split, split into shards."""

import functools
import hashlib
import io
import json
import logging
import multiprocessing
import os
import zlib
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, fields
from pathlib import Path, PurePath

from .atomic import write_json
from .coco import load_coco, read_json_or_none, validate_coco
from .errors import SegsubmitError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ManifestEntry:
    """One image of a split: its COCO id and file_name, `path` (the file the manifest resolved
    and hashed, relative to the data root: the one later stages open), size, shard and sha1."""

    id: int
    file_name: str
    path: str
    width: int
    height: int
    shard: int
    sha1: str

    @property
    def size(self):
        """(height, width), as arrays are shaped."""
        return self.height, self.width


ENTRY_KEYS = tuple(item.name for item in fields(ManifestEntry))


@dataclass(frozen=True)
class Manifest:
    """A split's validated image list in json order (or one shard's part of it), and the sha1
    of the json it was read from ('' when unknown), so later stages can tell it changed."""

    data_root: str
    images: tuple
    json_sha1: str = ""

    def file_names(self):
        return [entry.file_name for entry in self.images]

    def sizes(self):
        """The distinct (height, width) of the images, in order of first appearance."""
        return list(dict.fromkeys(entry.size for entry in self.images))

    def shard(self, index):
        """The entries of shard `index`, as a manifest of their own (without the json's sha1:
        a shard file changes only when its own images do, so only its inference reruns)."""
        return Manifest(self.data_root, tuple(e for e in self.images if e.shard == index))

    def save(self, path):
        images = [asdict(e) for e in self.images]
        write_json(
            path, {"data_root": self.data_root, "json_sha1": self.json_sha1, "images": images}
        )

    @classmethod
    def load(cls, path):
        """The manifest a workflow stage wrote at `path`; one line when it is missing or is
        another kind of file (a COCO json passed by mistake)."""
        try:
            content = json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError as err:
            raise SegsubmitError(
                f"{path}: manifest not found; run the workflow (its manifest rule writes "
                "results/<split>/manifest.json) or pass that file"
            ) from err
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise SegsubmitError(f"{path}: not a readable manifest ({err})") from err
        images = content.get("images") if isinstance(content, dict) else None
        if not (
            isinstance(images, list)
            and isinstance(content.get("data_root"), str)
            and all(isinstance(image, dict) and image.keys() == set(ENTRY_KEYS) for image in images)
        ):
            raise SegsubmitError(
                f'{path}: not a segsubmit manifest (expected {{"data_root": ..., "images": '
                f"[{{{', '.join(ENTRY_KEYS)}}}, ...]}}, found {type(content).__name__} "
                f"{str(content)[:60]!r}); pass results/<split>/manifest.json"
            )
        entries = tuple(ManifestEntry(**image) for image in images)
        return cls(content["data_root"], entries, str(content.get("json_sha1", "")))


def shard_of(file_name, shard_count):
    """Stable shard index of an image: adding images never moves existing ones."""
    return zlib.crc32(file_name.encode("utf-8", "surrogatepass")) % shard_count


def file_digest(path):
    """sha1 of a file's bytes: a changed image changes its shard file, so that shard reruns."""
    return hashlib.sha1(Path(path).read_bytes()).hexdigest()


def image_resolver(json_path, data_root):
    """A function from a file_name `validate_coco` accepted to the absolute path of its image
    (symlinks resolved, as `os.path.realpath` does), checked to exist inside `data_root`, and
    that path relative to the resolved root, '/'-separated. Folders are resolved once:
    realpath(folder/name) is realpath(realpath(folder)/name), so one `lstat` per image."""
    root = os.path.realpath(data_root)
    inside = os.path.join(root, "")
    real_folder = functools.lru_cache(maxsize=None)(os.path.realpath)

    def resolve(file_name):
        folder, name = os.path.split(file_name)
        path = os.path.join(real_folder(os.path.join(root, folder)), name)
        if os.path.islink(path):
            path = os.path.realpath(path)
        if not (path == root or path.startswith(inside)):
            raise SegsubmitError(
                f"{json_path}: file_name {file_name!r} resolves outside {data_root}"
            )
        if not os.path.isfile(path):
            raise SegsubmitError(
                f"{json_path}: lists {file_name!r} but {path} does not exist; fix data.root or "
                "the json"
            )
        return path, PurePath(path[len(inside) :]).as_posix()

    return resolve


# What the infer stage's decoder (torchvision's decode_image) reads, as Pillow names the formats;
# MPO is a JPEG holding extra pictures (phone cameras): the decoder reads its first, as viewers do.
DECODABLE_FORMATS = {"JPEG", "MPO", "PNG", "GIF", "WEBP"}


def image_header_problem(data):
    """Why the image file's bytes `data` are not one frame of a format the decoder reads, from
    its header alone (Pillow's `Image.open` decodes no pixels), or None. Files Pillow cannot
    identify (empty, corrupt) are left to the infer stage and its `infer.on_bad_image`."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            kind, frames = image.format, getattr(image, "n_frames", 1)
    except (UnidentifiedImageError, OSError, ValueError):
        return None
    if kind not in DECODABLE_FORMATS:
        return (
            f"is a {kind} image, which the decoder cannot read "
            f"({', '.join(sorted(DECODABLE_FORMATS - {'MPO'}))}); convert it to PNG or JPEG"
        )
    if frames > 1 and kind != "MPO":
        return f"holds {frames} frames ({kind}); export its first frame as a single image"
    return None


def image_record(path, mode):
    """What the fingerprint holds of one image: its size and mtime (`stat`) or the sha1 of its
    bytes (`content`); 'missing' when it can't be read."""
    try:
        if mode == "content":
            return file_digest(path)
        stat = os.stat(path)
        return f"{stat.st_size}\0{stat.st_mtime_ns}"
    except (OSError, ValueError):
        return "missing"


def image_fingerprint(json_path, data_root, mode="stat"):
    """Digest over every image a COCO json lists of its file_name and `image_record` (`mode`:
    data.fingerprint), for the manifest rule's params: a changed, added or removed image reruns
    the manifest (which then hashes the images' bytes) without making each image a Snakemake
    input (819 inputs cost the no-op run more than the stats). '' if the json can't be read: the
    manifest stage reports why (this runs while the DAG is built, before any validation)."""
    try:
        names = [image["file_name"] for image in read_json_or_none(json_path)["images"]]
    except (KeyError, TypeError, AttributeError):
        return ""
    digest = hashlib.sha1()
    for name in names:
        record = f"{name}\0{image_record(os.path.join(data_root, str(name)), mode)}\n"
        digest.update(record.encode("utf-8", "surrogatepass"))  # the manifest refuses non-UTF-8
    return digest.hexdigest()


def manifest_entries(images, json_path, data_root, shard_count):
    """The `ManifestEntry` of each COCO image record, in order: its file resolved, its header
    checked and its bytes hashed, from one read (the first bad image raises)."""
    resolve, entries = image_resolver(json_path, data_root), []
    for image in images:
        path, relative = resolve(image["file_name"])
        data = Path(path).read_bytes()
        problem = image_header_problem(data)
        if problem:
            raise SegsubmitError(f"{json_path}: {image['file_name']!r} ({path}) {problem}")
        entries.append(
            ManifestEntry(
                id=image["id"],
                file_name=image["file_name"],
                path=relative,
                width=image["width"],
                height=image["height"],
                shard=shard_of(image["file_name"], shard_count),
                sha1=hashlib.sha1(data).hexdigest(),
            )
        )
    return entries


WORKERS = min(8, os.cpu_count() or 1)  # without `threads`
IMAGES_PER_TASK = (128, 512)  # the fewest and most images a worker process checks per task


def image_chunks(images, workers):
    """`images` in consecutive slices, one per task of `workers` processes: enough to keep them
    all busy, of IMAGES_PER_TASK images (all in one slice for one worker)."""
    fewest, most = IMAGES_PER_TASK
    size = len(images) if workers == 1 else min(most, max(fewest, -(-len(images) // workers)))
    return [images[start : start + size] for start in range(0, len(images), size)]


def build_manifest(
    json_path, data_root, class_names, shard_count, category_map=None, max_pixels=None,
    threads=None,
):  # fmt: skip
    """The `Manifest` of a COCO json: its images in json order, each resolved, checked and
    hashed, in `threads` worker processes (Pillow's header parsing holds the GIL) or in this
    one for 1; the first bad image in json order is the one reported. Categories are renamed
    with `category_map`; images above `max_pixels` are refused."""
    coco = load_coco(json_path)
    json_sha1 = file_digest(json_path)
    validate_coco(json_path, coco, class_names, category_map, max_pixels)
    entries_of = functools.partial(
        manifest_entries, json_path=json_path, data_root=data_root, shard_count=shard_count
    )
    workers = threads or WORKERS
    chunks = image_chunks(coco["images"], workers)
    if len(chunks) == 1:
        entries = entries_of(chunks[0])
    else:
        fork = multiprocessing.get_context("fork")  # the rule's script has no __main__ guard
        with ProcessPoolExecutor(min(len(chunks), workers), mp_context=fork) as pool:
            entries = [entry for chunk in pool.map(entries_of, chunks) for entry in chunk]
    return Manifest(str(data_root), tuple(entries), json_sha1)


def check_json_unchanged(manifest, json_path):
    """One line when the json differs from the one `manifest` was built from (edited during the
    run): a later stage would read ids or annotations the manifest never validated."""
    if manifest.json_sha1 and file_digest(json_path) != manifest.json_sha1:
        raise SegsubmitError(
            f"{json_path}: changed since the manifest read it (sha1 {manifest.json_sha1[:12]}); "
            "run snakemake again: the manifest and the jobs after it rerun on the new json"
        )


def write_manifest(manifest, manifest_path, shard_paths):
    """Write the full manifest and one small file per shard (so shards rerun independently)."""
    manifest.save(manifest_path)
    for shard_index, shard_path in enumerate(shard_paths):
        manifest.shard(shard_index).save(shard_path)


def manifest_stage(
    json_path,
    data_root,
    class_names,
    manifest_path,
    shard_paths,
    category_map=None,
    max_image_pixels=None,
    threads=None,
):
    """Stage entry: validate the COCO json and its image files (categories renamed with
    `category_map`, images up to `max_image_pixels`; hashed by `threads` threads); write
    manifest + shard files."""
    manifest = build_manifest(
        json_path,
        data_root,
        class_names,
        len(shard_paths),
        category_map,
        max_image_pixels,
        threads,
    )
    write_manifest(manifest, manifest_path, shard_paths)
    sizes = Counter(entry.shard for entry in manifest.images)
    log.info(
        "manifest: %d images from %s in %d shards (sizes %s)",
        len(manifest.images),
        json_path,
        len(shard_paths),
        [sizes[shard] for shard in range(len(shard_paths))],
    )
