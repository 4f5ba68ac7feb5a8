"""Decode image files to uint8 RGB tensors (C, H, W), whatever their format."""

import re
import warnings
from pathlib import Path

import torch
from torchvision.io import ImageReadMode, decode_image

from .errors import SegsubmitError

# torchvision 0.29 announces its decoders' future removal on every worker; they remain the
# fastest libjpeg-turbo path here (and nvJPEG on GPUs), so the notice is silenced once.
warnings.filterwarnings(
    "ignore", "The image decoding and encoding capabilities", DeprecationWarning
)


def to_uint8(image):
    """16-bit images (PNG) keep their top 8 bits; uint8 passes through."""
    if image.dtype == torch.uint8:
        return image
    return (image.to(torch.int32) >> 8).to(torch.uint8)


def decode_rgb(path):
    """RGB uint8 (3, H, W) with EXIF orientation applied (as annotation tools display it).

    Grayscale is replicated to 3 channels, alpha is dropped, 16-bit is reduced to 8-bit.
    """
    data = torch.frombuffer(bytearray(Path(path).read_bytes()), dtype=torch.uint8)
    try:
        image = decode_image(data, mode=ImageReadMode.RGB, apply_exif_orientation=True)
    except RuntimeError as err:
        reason = re.sub(r"^\w+, \S+:\d+, ", "", str(err))
        raise SegsubmitError(
            f"{path}: cannot decode image ({reason}); replace or remove it"
        ) from err
    return to_uint8(image)
