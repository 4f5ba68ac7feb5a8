"""Decode image files to uint8 RGB tensors (C, H, W), whatever their format."""

import re
import warnings
from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError
from torchvision.io import ImageReadMode, decode_image

from .errors import SegsubmitError

# torchvision 0.29 announces its decoders' future removal on every worker; they remain the
# fastest libjpeg-turbo path here (and nvJPEG on GPUs), so the notice is silenced once.
warnings.filterwarnings(
    "ignore", "The image decoding and encoding capabilities", DeprecationWarning
)
# The pixel cap is `infer.max_image_pixels`, checked by `check_pixel_count`; Pillow's own
# (a warning, then an error at 179 MP) would override a larger configured one.
Image.MAX_IMAGE_PIXELS = None


def to_uint8(image):
    """16-bit images (PNG) keep their top 8 bits; uint8 passes through."""
    if image.dtype == torch.uint8:
        return image
    return (image.to(torch.int32) >> 8).to(torch.uint8)


def check_pixel_count(path, max_pixels):
    """Refuse an image whose header declares more than `max_pixels` pixels, before any pixel is
    decoded (Pillow's `Image.open` reads the header only); formats Pillow can't identify are
    left to the decoder."""
    try:
        with Image.open(path) as image:
            width, height = image.size
    except (UnidentifiedImageError, OSError, ValueError):
        return
    if width * height > max_pixels:
        raise SegsubmitError(
            f"{path}: header declares {width}x{height} = {width * height} pixels, above "
            f"infer.max_image_pixels {max_pixels}; shrink the image or raise the limit"
        )


def decode_rgb(path, max_pixels=None):
    """RGB uint8 (3, H, W) with EXIF orientation applied (as annotation tools display it).

    Grayscale is replicated to 3 channels, alpha is dropped, 16-bit is reduced to 8-bit. Images
    above `max_pixels` (from the header) and empty files are refused with one line.
    """
    if max_pixels is not None:
        check_pixel_count(path, max_pixels)
    try:
        raw = Path(path).read_bytes()
    except OSError as err:
        raise SegsubmitError(
            f"{path}: cannot read image ({err.strerror}); fix or remove it"
        ) from err
    if not raw:
        raise SegsubmitError(
            f"{path}: cannot decode image (the file is empty); replace or remove it"
        )
    data = torch.frombuffer(bytearray(raw), dtype=torch.uint8)
    try:
        image = decode_image(data, mode=ImageReadMode.RGB, apply_exif_orientation=True)
    except RuntimeError as err:
        reason = re.sub(r"^\w+, \S+:\d+, ", "", str(err))
        raise SegsubmitError(
            f"{path}: cannot decode image ({reason}); replace or remove it"
        ) from err
    return to_uint8(image)
