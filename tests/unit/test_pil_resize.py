"""pil_bilinear_resize against Pillow itself: the same pixels for any sizes, up or down."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from segsubmit.pil_resize import horizontal_first, pil_bilinear_resize

sizes = st.integers(min_value=1, max_value=160)


def pillow_resize(image_hwc, height, width):
    return np.asarray(Image.fromarray(image_hwc).resize((width, height), Image.BILINEAR))


def torch_resize(image_hwc, height, width, device="cpu"):
    batch = torch.from_numpy(image_hwc).permute(2, 0, 1)[None].to(device)
    return pil_bilinear_resize(batch, height, width)[0].permute(1, 2, 0).cpu().numpy()


@settings(max_examples=60, deadline=None)
@given(sizes, sizes, sizes, sizes, st.integers(0, 2**32 - 1))
def test_equals_pillow_for_any_sizes(in_height, in_width, height, width, seed):
    image = np.random.default_rng(seed).integers(0, 256, (in_height, in_width, 3), np.uint8)
    assert np.array_equal(torch_resize(image, height, width), pillow_resize(image, height, width))


@pytest.mark.parametrize(
    ("in_size", "size"),
    [((512, 512), (800, 800)), ((480, 640), (800, 1067)), ((1000, 1500), (800, 1200)),
     ((300, 200), (299, 201)), ((2000, 300), (400, 290))],
)  # fmt: skip
def test_equals_pillow_on_detectron2_sizes(in_size, size):
    image = np.random.default_rng(0).integers(0, 256, (*in_size, 3), np.uint8)
    assert np.array_equal(torch_resize(image, *size), pillow_resize(image, *size))


def test_pass_order_follows_the_pillow_version():
    # a height shrinking by more than twice the width's shrink goes first from Pillow 13 on
    assert horizontal_first(300, 200, 299, 201, pillow_major=12)
    assert not horizontal_first(300, 200, 299, 201, pillow_major=13)
    assert horizontal_first(512, 512, 800, 800, pillow_major=13)


def test_same_size_is_returned_unchanged():
    batch = torch.zeros((2, 3, 8, 9), dtype=torch.uint8)
    assert pil_bilinear_resize(batch, 8, 9) is batch


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (run on a GPU host)")
def test_equals_pillow_on_the_gpu():
    image = np.random.default_rng(1).integers(0, 256, (512, 512, 3), np.uint8)
    assert np.array_equal(torch_resize(image, 800, 800, "cuda"), pillow_resize(image, 800, 800))
