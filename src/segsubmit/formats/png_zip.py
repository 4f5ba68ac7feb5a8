"""PNG label maps in a zip (`png_zip_format`): writer and re-read validator.

Members are stored (PNG is compressed already) with a fixed timestamp, so the same maps give
the same bytes. Pixel values are the classes' label ids (`label_ids`, default the index)."""

import io
import zipfile
from pathlib import PurePosixPath

import numpy as np

from ..atomic import atomic_path
from ..errors import SegsubmitError
from .options import class_ids, write_checked

ZIP_DATE = (1980, 1, 1, 0, 0, 0)


def member_name(file_name):
    """The PNG's name in the zip: the file_name with its extension replaced by `.png`."""
    return str(PurePosixPath(file_name).with_suffix(".png"))


def member_names(file_names, shown):
    """Member names in manifest order; one line when two file names give one member."""
    names, seen = [], {}
    for file_name in file_names:
        member = member_name(file_name)
        if member in seen:
            raise SegsubmitError(
                f"{shown}: file_names {seen[member]!r} and {file_name!r} both become {member!r} "
                "in the zip; rename one image or use another format"
            )
        seen[member] = file_name
        names.append(member)
    return names


def voc_palette():
    """The Pascal VOC colour map (256 RGB triples, flat), the usual palette of label PNGs."""
    palette = []
    for index in range(256):
        red = green = blue = 0
        code = index
        for bit in range(8):
            red |= (code & 1) << (7 - bit)
            green |= ((code >> 1) & 1) << (7 - bit)
            blue |= ((code >> 2) & 1) << (7 - bit)
            code >>= 3
        palette += [red, green, blue]
    return palette


def id_lookup(settings):
    """uint8 table class index -> label id, and the bool table of allowed ids."""
    ids = class_ids(settings.options.get("label_ids") or {}, settings.names())
    lookup = np.zeros(256, dtype=np.uint8)
    allowed = np.zeros(256, dtype=bool)
    for index, value in ids.items():
        lookup[index] = value
        allowed[value] = True
    return lookup, allowed


def encode_png(label_ids, mode):
    """PNG bytes of an (h, w) uint8 map of label ids, greyscale or palette."""
    from PIL import Image

    image = Image.fromarray(np.ascontiguousarray(label_ids, dtype=np.uint8), mode="L")
    if mode == "P":
        image = image.convert("P")  # L -> P keeps the values as palette indices
        image.putpalette(voc_palette())
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def decode_png(data, size, mode=None):
    """(h, w) uint8 values of a PNG member, or the reason it is not a label map of `size`."""
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(io.BytesIO(data))
        if image.format != "PNG":
            return f"is {image.format}, not PNG"
        if image.mode not in ("L", "P") or (mode and image.mode != mode):
            return f"is a {image.mode} image, expected {mode or 'L or P'} (8-bit labels)"
        if image.size != (size[1], size[0]):
            return f"is {image.size[1]}x{image.size[0]}, expected {size[0]}x{size[1]}"
        return np.asarray(image)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        return f"cannot be decoded as PNG ({err})"


def write_png_zip(path, file_names, label_maps, settings, check=None):
    """Write the zip atomically; `check(tmp_path)` runs on the finished temporary file before
    its rename and its result is returned."""
    names = member_names(file_names, path)
    lookup, _ = id_lookup(settings)
    mode = settings.options.get("mode", "L")
    with atomic_path(path) as tmp_path:
        with zipfile.ZipFile(tmp_path, "w", zipfile.ZIP_STORED) as archive:
            for member, label_map in zip(names, label_maps, strict=True):
                info = zipfile.ZipInfo(member, date_time=ZIP_DATE)
                info.external_attr = 0o644 << 16
                archive.writestr(info, encode_png(lookup[label_map], mode))
        return check(tmp_path) if check else None


def validate_png_zip(path, file_names, settings, label_maps=None, name=None):
    """Re-read the zip: one member per image, named and ordered as the manifest gives, each an
    8-bit PNG of the map size holding only configured label ids; with `label_maps` (in
    manifest order) the mode must be the configured one and each PNG must equal the map's
    ids. Error on the first problem, naming the member; returns {"rows", "images"}."""
    shown = name or path
    names = member_names(file_names, shown)
    lookup, allowed = id_lookup(settings)
    mode = settings.options.get("mode", "L") if label_maps is not None else None
    maps = iter(label_maps) if label_maps is not None else None
    size = tuple(settings.size)
    try:
        with zipfile.ZipFile(path) as archive:
            members = [info.filename for info in archive.infolist()]
            for position, (member, expected_name) in enumerate(zip(members, names, strict=False)):
                if member != expected_name:
                    raise SegsubmitError(
                        f"{shown}: member {position + 1} is {member!r}, expected "
                        f"{expected_name!r} (manifest order)"
                    )
            if len(members) != len(names):
                raise SegsubmitError(
                    f"{shown}: {len(members)} PNGs, but the manifest lists {len(names)} images"
                )
            for member in names:
                decoded = decode_png(archive.read(member), size, mode)
                if isinstance(decoded, str):
                    raise SegsubmitError(f"{shown}: {member} {decoded}")
                if not allowed[decoded].all():
                    bad = int(decoded[~allowed[decoded]][0])
                    raise SegsubmitError(
                        f"{shown}: {member} holds value {bad}, which is no class's label id"
                    )
                if maps is not None:
                    expected = lookup[next(maps)]
                    if not np.array_equal(decoded, expected):
                        raise SegsubmitError(
                            f"{shown}: {member} differs from the prediction at "
                            f"{int((decoded != expected).sum())} pixels"
                        )
    except (OSError, zipfile.BadZipFile, EOFError) as err:
        raise SegsubmitError(f"{shown}: cannot read as a zip ({err})") from err
    return {"rows": len(names), "images": len(names)}


def write_checked_png_zip(path, file_names, label_maps, settings):
    """`options.write_checked` with this format's writer and validator."""
    return write_checked(
        path, file_names, label_maps, settings, write_png_zip, validate_png_zip, ("png_zip", "PNGs")
    )
