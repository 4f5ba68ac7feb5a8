"""Resize backends: NEAREST on label maps, both backends, the libraries' own rules."""

import logging

import cv2
import numpy as np
import pytest
import torch

from segsubmit.errors import SegsubmitError
from segsubmit.resize import check_interpolation, resize_label_maps


def random_maps(count, height, width, seed=0):
    return list(np.random.default_rng(seed).integers(0, 11, (count, height, width), np.uint8))


@pytest.mark.parametrize("backend", ["albumentations", "kornia"])
def test_512_to_256_is_every_other_pixel(backend):
    maps = random_maps(5, 512, 512)
    resized = resize_label_maps(maps, (256, 256), backend)
    assert resized.dtype == np.uint8 and resized.shape == (5, 256, 256)
    assert np.array_equal(resized, np.stack(maps)[:, ::2, ::2])


def test_backends_identical_for_512_to_256():
    maps = random_maps(8, 512, 512, seed=1)
    assert np.array_equal(
        resize_label_maps(maps, (256, 256), "albumentations"),
        resize_label_maps(maps, (256, 256), "kornia"),
    )


@pytest.mark.parametrize("size", [(130, 100), (300, 257), (97, 512), (512, 384)])
def test_each_backend_follows_its_library_rule(size):
    """Albumentations = cv2 INTER_NEAREST; Kornia = torch `interpolate(mode="nearest")`."""
    maps = random_maps(2, *size, seed=2)
    album = resize_label_maps(maps, (256, 256), "albumentations")
    kornia = resize_label_maps(maps, (256, 256), "kornia")
    for label_map, a, k in zip(maps, album, kornia, strict=True):
        assert np.array_equal(a, cv2.resize(label_map, (256, 256), interpolation=cv2.INTER_NEAREST))
        torch_ref = torch.nn.functional.interpolate(
            torch.from_numpy(label_map)[None, None], size=(256, 256), mode="nearest"
        )[0, 0]
        assert np.array_equal(k, torch_ref.numpy())


def test_where_backends_differ_on_odd_ratios():
    """130 -> 100: float32 vs double index arithmetic picks other source rows at a few indices
    (documented in config/README.md)."""
    column = np.arange(130, dtype=np.uint8)[:, None].repeat(4, axis=1)
    album = resize_label_maps([column], (100, 4), "albumentations")[0][:, 0]
    kornia = resize_label_maps([column], (100, 4), "kornia")[0][:, 0]
    differing = np.flatnonzero(album != kornia)
    assert differing.tolist() == [10, 20, 30, 40, 50, 60, 70, 80]
    assert np.all(np.abs(album.astype(int) - kornia.astype(int))[differing] == 1)


def test_mixed_sizes_keep_order():
    maps = [
        np.full((64, 64), 1, np.uint8),
        np.full((32, 48), 2, np.uint8),
        np.full((64, 64), 3, np.uint8),
    ]
    resized = resize_label_maps(maps, (16, 16), "albumentations")
    assert [int(m[0, 0]) for m in resized] == [1, 2, 3]


def test_bilinear_refused_unless_allowed(caplog):
    with pytest.raises(SegsubmitError, match="allow_bilinear_labels"):
        check_interpolation("bilinear", allow_bilinear_labels=False)
    with caplog.at_level(logging.WARNING):
        check_interpolation("bilinear", allow_bilinear_labels=True)
    assert "pitfall" in caplog.text


@pytest.mark.parametrize("backend", ["albumentations", "kornia"])
def test_bilinear_pitfall_invents_classes(backend):
    """Between classes 1 and 9, bilinear creates 5: why NEAREST is the default."""
    label_map = np.ones((64, 64), np.uint8)
    label_map[:, 33:] = 9
    resized = resize_label_maps([label_map], (50, 50), backend, "bilinear")[0]
    assert set(np.unique(resized)) - {1, 9}
    nearest = resize_label_maps([label_map], (48, 48), backend, "nearest")[0]
    assert set(np.unique(nearest)) == {1, 9}


@pytest.mark.parametrize("backend", ["albumentations", "kornia"])
def test_threads_resize_the_same_maps_in_the_same_order(tmp_path, backend, monkeypatch):
    """Spans on several threads (small spans, so there are many) write the maps one thread
    writes."""
    from segsubmit import resize
    from segsubmit.labels import read_label_shard, write_label_shard
    from segsubmit.resize import resize_stage

    monkeypatch.setattr(resize, "MAPS_AT_ONCE", 6)
    rng = np.random.default_rng(3)
    maps = [rng.integers(0, 11, shape, dtype=np.uint8) for shape in [(40, 30)] * 9 + [(20, 50)] * 8]
    write_label_shard(tmp_path / "labels.npz", list(range(100, 117)), maps)
    for threads in (1, 4):
        resize_stage(tmp_path / "labels.npz", tmp_path / f"{threads}.npz", backend, [16, 16],
                     "nearest", False, threads=threads)  # fmt: skip
    one, four = read_label_shard(tmp_path / "1.npz"), read_label_shard(tmp_path / "4.npz")
    assert one[0] == four[0] == list(range(100, 117)) and np.array_equal(one[1], four[1])
    assert np.array_equal(one[1][0], resize_label_maps([maps[0]], (16, 16), backend)[0])
