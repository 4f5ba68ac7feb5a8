"""Images of every format and models that don't fit: handled, or refused before inference."""

import json
import logging
import time
from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import CLASSES, save_random_model
from PIL import Image

from segsubmit.backends.base import Predictor, load_predictor
from segsubmit.errors import SegsubmitError
from segsubmit.images import decode_rgb
from segsubmit.infer import infer_stage, predict_with_backoff, shared_views
from segsubmit.labels import read_shard_warnings
from segsubmit.manifest import manifest_stage
from segsubmit.resize import resize_stage
from segsubmit.settings import InferSettings
from segsubmit.submission import submission_stage
from segsubmit.testing import image_entry, make_dataset, model_settings, predict_shard

RGB = np.random.default_rng(0).integers(0, 256, (24, 40, 3), dtype=np.uint8)


def as_chw(array):
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))


@pytest.mark.parametrize(
    ("mode", "suffix", "expected"),
    [
        ("RGB", ".png", lambda a: a),
        ("RGBA", ".png", lambda a: a),
        (
            "L",
            ".png",
            lambda a: np.repeat(np.asarray(Image.fromarray(a).convert("L"))[..., None], 3, axis=2),
        ),
    ],
)
def test_formats_decode_to_rgb(tmp_path, mode, suffix, expected):
    path = tmp_path / f"image{suffix}"
    Image.fromarray(RGB).convert(mode).save(path)
    assert torch.equal(decode_rgb(path), as_chw(expected(RGB)))


def test_sixteen_bit_png_keeps_top_byte(tmp_path):
    gray16 = np.arange(24 * 40, dtype=np.uint16).reshape(24, 40) * 61
    Image.fromarray(gray16).save(tmp_path / "deep.png")
    decoded = decode_rgb(tmp_path / "deep.png")
    assert decoded.dtype == torch.uint8 and decoded.shape == (3, 24, 40)
    assert torch.equal(decoded[0], torch.from_numpy((gray16 >> 8).astype(np.uint8)))


def test_exif_rotation_is_applied(tmp_path):
    """Orientation 6 (rotate 90 clockwise for display): decoded as the viewer shows it."""
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(RGB).save(tmp_path / "rotated.jpg", exif=exif, quality=100)
    decoded = decode_rgb(tmp_path / "rotated.jpg")
    assert decoded.shape == (3, 40, 24)
    upright = np.asarray(Image.open(tmp_path / "rotated.jpg").transpose(Image.Transpose.ROTATE_270))
    assert np.abs(decoded.permute(1, 2, 0).numpy().astype(int) - upright).mean() < 2


def test_corrupt_and_truncated_images_name_the_file(tmp_path):
    Image.fromarray(RGB).save(tmp_path / "good.jpg")
    (tmp_path / "truncated.jpg").write_bytes((tmp_path / "good.jpg").read_bytes()[:300])
    (tmp_path / "garbage.jpg").write_bytes(b"not an image")
    for name in ("truncated.jpg", "garbage.jpg"):
        with pytest.raises(SegsubmitError, match=name):
            decode_rgb(tmp_path / name)


@pytest.fixture
def predictor(tmp_path):
    """The CPU predictor these tests compare against (on a GPU host too: the GPU paths have
    their own tests)."""
    weights = save_random_model(tmp_path / "model.pt")
    return load_predictor(
        model_settings(
            "torchvision",
            str(weights),
            len(CLASSES),
            options={"architecture": "lraspp_mobilenet_v3_large"},
            device="cpu",
        ),
    )


def entries_for(tmp_path, sizes):
    entries = []
    for index, (height, width) in enumerate(sizes):
        name = f"img{index}.jpg"
        Image.fromarray(np.resize(RGB, (height, width, 3))).save(tmp_path / name)
        entries.append(image_entry(index, name, height, width))
    return entries


def test_mixed_sizes_predicted_at_true_size(tmp_path, predictor):
    sizes = [(40, 40), (48, 64), (40, 40), (33, 57)]
    maps = predict_shard(entries_for(tmp_path, sizes), tmp_path, predictor, 2, 0)
    assert [m.shape for m in maps] == sizes and all(m.dtype == np.uint8 for m in maps)
    alone = predict_shard(entries_for(tmp_path, sizes)[1:2], tmp_path, predictor, 1, 0)
    assert np.array_equal(alone[0], maps[1])


def test_json_size_must_match_image(tmp_path, predictor):
    entries = [replace(entries_for(tmp_path, [(40, 40)])[0], width=41)]
    with pytest.raises(SegsubmitError, match="differs from the json"):
        predict_shard(entries, tmp_path, predictor, 1, 0)


def test_bad_image_blank_mode(tmp_path, predictor, caplog):
    entries = entries_for(tmp_path, [(40, 40), (40, 40)])
    (tmp_path / "img1.jpg").write_bytes(b"broken")
    with pytest.raises(SegsubmitError, match="img1.jpg") as error:
        predict_shard(entries, tmp_path, predictor, 2, workers=2)
    assert "\n" not in str(error.value)  # one line, not a DataLoader worker traceback
    with caplog.at_level(logging.WARNING):
        maps = predict_shard(entries, tmp_path, predictor, 2, 0, on_bad_image="blank")
    assert not maps[1].any() and maps[1].shape == (40, 40)
    assert "img1.jpg" in caplog.text


def test_empty_and_unreadable_images_follow_on_bad_image(tmp_path, predictor):
    entries = entries_for(tmp_path, [(40, 40), (40, 40), (40, 40)])
    (tmp_path / "img1.jpg").write_bytes(b"")
    (tmp_path / "img2.jpg").unlink()
    (tmp_path / "img2.jpg").mkdir()  # exists, cannot be read as a file
    with pytest.raises(
        SegsubmitError, match=r"img1.jpg: cannot decode image \(the file is empty\)"
    ):
        predict_shard(entries, tmp_path, predictor, 3, 0)
    maps = predict_shard(entries, tmp_path, predictor, 3, 0, on_bad_image="blank")
    assert maps[0].shape == (40, 40) and not maps[1].any() and not maps[2].any()
    with pytest.raises(SegsubmitError, match=r"img2.jpg: cannot read image \(Is a directory\)"):
        decode_rgb(tmp_path / "img2.jpg")


def test_pixel_cap_is_checked_from_the_header_before_decoding(tmp_path, predictor):
    """A 20000 x 20000 PNG (a 1.2 MB file that would decode to 1.2 GB) is refused in
    milliseconds, before any pixel is decoded."""
    Image.new("L", (20000, 20000)).save(tmp_path / "bomb.png", optimize=False)
    started = time.perf_counter()
    with pytest.raises(SegsubmitError, match="bomb.png: header declares 20000x20000 = "
                       "400000000 pixels, above infer.max_image_pixels 100000000"):  # fmt: skip
        decode_rgb(tmp_path / "bomb.png", max_pixels=10**8)
    assert time.perf_counter() - started < 1
    entries = entries_for(tmp_path, [(40, 40)])
    shard = predict_shard(entries, tmp_path, predictor, 1, 0)
    assert shard[0].shape == (40, 40)
    with pytest.raises(SegsubmitError, match="above infer.max_image_pixels 1000"):
        decode_rgb(tmp_path / "img0.jpg", max_pixels=1000)


def test_class_count_mismatch_is_refused(tmp_path):
    weights = save_random_model(tmp_path / "model.pt")
    with pytest.raises(SegsubmitError, match="do not fit lraspp_mobilenet_v3_large with 5 classes"):
        load_predictor(
            model_settings(
                "torchvision",
                str(weights),
                num_classes=5,
                options={"architecture": "lraspp_mobilenet_v3_large"},
            ),
        )


def test_weights_of_another_architecture_are_refused(tmp_path):
    weights = save_random_model(tmp_path / "model.pt")
    with pytest.raises(SegsubmitError, match="do not fit deeplabv3_mobilenet_v3_large"):
        load_predictor(
            model_settings(
                "torchvision",
                str(weights),
                num_classes=11,
                options={"architecture": "deeplabv3_mobilenet_v3_large"},
            ),
        )


class Payload:
    """Pickled objects can run code on load: weights_only refuses them."""


def test_checkpoints_are_loaded_weights_only(tmp_path):
    torch.save({"model": Payload()}, tmp_path / "evil.pt")
    with pytest.raises(SegsubmitError, match="weights-only"):
        load_predictor(
            model_settings(
                "torchvision",
                str(tmp_path / "evil.pt"),
                num_classes=11,
                options={"architecture": "lraspp_mobilenet_v3_large"},
            ),
        )


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_torchscript_backend_matches_torchvision(tmp_path, predictor):
    traced = torch.jit.trace(predictor.module, torch.zeros(1, 3, 48, 48), strict=False)
    traced.save(str(tmp_path / "model.ts"))
    scripted = load_predictor(
        model_settings("torchscript", str(tmp_path / "model.ts"), 11, device="cpu")
    )
    batch = torch.from_numpy(np.resize(RGB, (2, 3, 48, 48)))
    assert torch.equal(scripted.predict(batch, (48, 48)), predictor.predict(batch, (48, 48)))
    with pytest.raises(SegsubmitError, match="predicts 11 classes but config `classes` lists 4"):
        load_predictor(model_settings("torchscript", str(tmp_path / "model.ts"), num_classes=4))


class RunsOutOfMemoryAboveTwo(Predictor):
    """A predictor whose device 'fits' two images: larger batches raise CUDA OOM."""

    def __init__(self):
        super().__init__(torch.device("cpu"), 11, "fp32")
        self.batch_sizes = []

    def predict(self, batch, size):
        if len(batch) > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (test)")
        self.batch_sizes.append(len(batch))
        return batch[:, 0].clone()


def test_out_of_memory_halves_the_batch_and_keeps_every_image(caplog):
    predictor = RunsOutOfMemoryAboveTwo()
    batch = torch.arange(7, dtype=torch.uint8).view(7, 1, 1, 1).expand(7, 3, 2, 2).contiguous()
    with caplog.at_level(logging.WARNING):
        labels = predict_with_backoff(predictor, batch, (2, 2))["labels"]
    assert labels[:, 0, 0].tolist() == list(range(7))
    assert sum(predictor.batch_sizes) == 7 and max(predictor.batch_sizes) <= 2
    assert "out of memory" in caplog.text


@pytest.mark.skipif(
    not torch.cuda.is_available(),
    reason="needs a CUDA GPU (run on a GPU machine: pytest tests -k out_of_memory)",
)
def test_out_of_memory_back_off_on_a_real_gpu(tmp_path):
    """Fill the GPU so that only a small batch fits, then predict a large one."""
    weights = save_random_model(tmp_path / "model.pt")
    predictor = load_predictor(
        model_settings(
            "torchvision",
            str(weights),
            num_classes=11,
            options={"architecture": "lraspp_mobilenet_v3_large"},
        ),
    )
    batch = torch.randint(0, 256, (64, 3, 512, 512), dtype=torch.uint8, device="cuda")
    reference = torch.cat(
        [predictor.predict(batch[i : i + 8], (512, 512)) for i in range(0, 64, 8)]
    )
    free, _ = torch.cuda.mem_get_info()
    ballast = torch.empty(int(free * 0.97), dtype=torch.uint8, device="cuda")
    try:
        labels = predict_with_backoff(predictor, batch, (512, 512))["labels"]
    finally:
        del ballast
        torch.cuda.empty_cache()  # give the memory back: later tests start CUDA processes
    assert torch.equal(labels, reference)


def test_auto_batch_size_on_cpu_predicts_everything(tmp_path, predictor, caplog):
    entries = entries_for(tmp_path, [(40, 40), (48, 64), (40, 40)])
    with caplog.at_level(logging.INFO):
        auto = predict_shard(entries, tmp_path, predictor, "auto", 0)
    fixed = predict_shard(entries, tmp_path, predictor, 2, 0)
    assert all(np.array_equal(a, f) for a, f in zip(auto, fixed, strict=True))
    assert "batch_size auto: 1 on cpu" in caplog.text


def edited_model(path, change):
    """A random model whose classifier heads are edited by `change(name, tensor)`."""
    weights = torch.load(save_random_model(path), weights_only=True)
    for name, tensor in weights.items():
        if name.startswith(("classifier.low_classifier", "classifier.high_classifier")):
            change(name, tensor)
    torch.save(weights, path)
    return path


def nan_head(name, tensor):
    tensor.fill_(float("nan"))


def background_head(name, tensor):
    tensor.zero_()
    if name.endswith("bias"):
        tensor[0] = 10.0  # every pixel: class 0


@pytest.mark.parametrize(
    ("change", "warning"),
    [
        (nan_head, "labels/0.npz: 6 of 6 images had non-finite logits (NaN or infinity)"),
        (background_head, "labels/0.npz: every one of the 6 maps is a single class (0)"),
    ],
)
def test_nonsense_predictions_are_loud(tmp_path, caplog, change, warning):
    """Real stages, manifest -> infer -> resize -> submission: the warning is logged, stored
    with the label shard and listed in submission.valid.json."""
    root = make_dataset(tmp_path / "data", {"val": 6}, size=32)
    out = tmp_path / "results"
    manifest_stage(root / "val.json", root, CLASSES, out / "manifest.json", [out / "0.json"])
    settings = model_settings("torchvision", edited_model(tmp_path / "model.pt", change))
    with caplog.at_level(logging.WARNING):
        infer = InferSettings(batch_size=4, workers=0)
        infer_stage(out / "0.json", out / "labels/0.npz", settings, infer)
    assert warning in caplog.text
    assert any(warning in line for line in read_shard_warnings(out / "labels/0.npz"))
    resize_stage(out / "labels/0.npz", out / "resized/0.npz", "albumentations", [8, 8], "nearest",
                 False)  # fmt: skip
    submission_stage(out / "manifest.json", [out / "resized/0.npz"],
                     {"competition_csv": out / "submission.csv"}, out / "submission.valid.json",
                     CLASSES, [8, 8])  # fmt: skip
    report = json.loads((out / "submission.valid.json").read_text())
    assert report["valid"] and any(warning in line for line in report["warnings"])


def prefixed(state_dict, prefix):
    return {prefix + key: value for key, value in state_dict.items()}


@pytest.mark.parametrize(
    ("wrap", "cause"),
    [
        (lambda sd: {"epoch": 3, "state_dict": prefixed(sd, "model.")}, "under 'state_dict'"),
        (lambda sd: prefixed(sd, "model."), "keys carry a 'model.' prefix"),
        (lambda sd: prefixed(sd, "module."), "keys carry a 'module.' prefix"),
    ],
)
def test_a_refused_checkpoint_names_a_few_keys_and_the_likely_cause(tmp_path, wrap, cause):
    """Not the 9,000-character list of every missing key: counts, the first few, the cause."""
    weights = save_random_model(tmp_path / "model.pt")
    torch.save(wrap(torch.load(weights, weights_only=True)), tmp_path / "wrapped.pt")
    settings = model_settings(
        "torchvision",
        str(tmp_path / "wrapped.pt"),
        options={"architecture": "lraspp_mobilenet_v3_large"},
    )
    with pytest.raises(SegsubmitError, match=r"\d+ missing \(backbone\.") as error:
        load_predictor(settings)
    message = str(error.value)
    assert cause in message and "unexpected" in message
    assert "\n" not in message and len(message) < 700


def test_workers_auto_follows_the_cpus_this_process_may_use(monkeypatch):
    from segsubmit.infer import resolve_workers

    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert resolve_workers(3, cuda) == 3 and resolve_workers(0, cpu) == 0
    for cpus, on_gpu, on_cpu in ((16, 8, 4), (8, 6, 4), (2, 1, 1), (1, 1, 0)):
        monkeypatch.setattr("os.sched_getaffinity", lambda _, n=cpus: set(range(n)))
        assert (resolve_workers("auto", cuda), resolve_workers("auto", cpu)) == (on_gpu, on_cpu)
    assert InferSettings().workers == "auto"


def test_models_without_a_host_transform_share_the_decoded_image():
    assert shared_views([None, None]) == (None, [None, None])
    image = torch.arange(12, dtype=torch.uint8).reshape(3, 2, 2)
    transform, views = shared_views([None, torch.flipud, None, torch.fliplr])
    assert views == [0, 1, 0, 2]
    decoded, flipped_ud, flipped_lr = transform(image)
    assert decoded is image
    assert torch.equal(flipped_ud, image.flipud()) and torch.equal(flipped_lr, image.fliplr())
