"""Issue 19's probability pieces: resize.interpolation probability (the infer job's argmax of
area-averaged probabilities submitted as the resized maps), its row in the report's resizing
panel, pseudo-labels with a confidence threshold, and the settings refused before any job."""

import json

import numpy as np
import pytest
import torch
from conftest import CLASSES, make_dataset
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from segsubmit.backends.base import Predictor, has_probabilities, load_predictor
from segsubmit.config import check_config, default_config
from segsubmit.errors import SegsubmitError
from segsubmit.images import decode_rgb
from segsubmit.infer import infer_stage
from segsubmit.labels import LabelShard, read_label_shard
from segsubmit.manifest import Manifest, manifest_stage
from segsubmit.plugins import BACKENDS, Backend, backend_named
from segsubmit.probabilities import ProbabilityOutputs
from segsubmit.pseudo_labels import pseudo_labels_stage
from segsubmit.report import compare_interpolations, invented_count, score_table_html
from segsubmit.resize import resize_label_maps, resize_stage
from segsubmit.settings import InferSettings
from segsubmit.testing import model_settings, save_random_model, smp_unet_settings

SIZE = (24, 24)
THRESHOLD = 0.2


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A real infer job writing labels and area labels, a second one (no label file) writing
    confident labels, the resize of each interpolation, and the model's own probabilities."""
    tmp_path = tmp_path_factory.mktemp("probability_space")
    root = make_dataset(tmp_path / "data", {"val": 6}, size=48)
    out = tmp_path / "results"
    manifest_stage(root / "val.json", root, CLASSES, out / "manifest.json", [out / "0.json"])
    model = smp_unet_settings(tmp_path / "model.pt")
    infer = InferSettings(batch_size=4, workers=0)
    area = ProbabilityOutputs(area_labels=str(out / "area.npz"), size=SIZE)
    infer_stage(out / "0.json", out / "labels.npz", model, infer, outputs=area)
    confident = ProbabilityOutputs(confident_labels=str(out / "confident.npz"), threshold=THRESHOLD)
    infer_stage(out / "0.json", None, model, infer, outputs=confident)
    for interpolation in ("nearest", "probability"):
        resize_stage(
            out / "labels.npz", out / f"{interpolation}.npz", "albumentations", list(SIZE),
            interpolation, False, area_labels_path=out / "area.npz",
        )  # fmt: skip
    entries = Manifest.load(out / "0.json").images
    predictor = load_predictor(model)
    images = torch.stack([decode_rgb(root / entry.path) for entry in entries])
    probabilities = torch.cat(  # the infer job's batches (4 + 2): the same kernels' sums
        [predictor.predict_probabilities(images[i : i + 4], (48, 48))[1] for i in (0, 4)]
    )
    return out, entries, probabilities


def test_probability_resize_submits_the_argmax_of_block_mean_probabilities(run):
    out, _, probabilities = run
    expected = torch.nn.functional.avg_pool2d(probabilities, 2).argmax(dim=1).numpy()
    image_ids, resized = read_label_shard(out / "probability.npz")
    assert image_ids == LabelShard(out / "labels.npz").image_ids
    assert np.array_equal(resized, expected)
    _, nearest = read_label_shard(out / "nearest.npz")
    assert (np.asarray(resized) != np.asarray(nearest)).any()  # another answer than nearest


def test_probability_resize_refuses_maps_of_another_run(run):
    out, _, _ = run
    with pytest.raises(SegsubmitError, match="area.npz: not the probability-space maps") as error:
        resize_stage(
            out / "labels.npz", out / "bad.npz", "albumentations", [12, 12], "probability",
            False, area_labels_path=out / "area.npz",
        )  # fmt: skip
    assert "\n" not in str(error.value) and not (out / "bad.npz").exists()
    with pytest.raises(ValueError, match="needs class probabilities"):
        resize_label_maps(np.zeros((1, 4, 4), np.uint8), (2, 2), "albumentations", "probability")


def test_confident_labels_without_a_label_file_mark_the_unsure_pixels(run):
    out, _, probabilities = run
    top, labels = probabilities.max(dim=1)
    expected = torch.where(top < THRESHOLD, 255, labels).numpy()
    _, confident = read_label_shard(out / "confident.npz")
    assert np.array_equal(confident, expected)
    assert 0 < (expected == 255).mean() < 1


def one_hot_invented(source, resized):
    """Reference: an output pixel's class is invented when the area average of its class's
    one-hot map over its source window (torch's area mode) is 0."""
    hot = torch.nn.functional.one_hot(torch.from_numpy(source).long(), 256)
    pooled = torch.nn.functional.interpolate(
        hot.permute(2, 0, 1)[None].double(), size=resized.shape, mode="area"
    )[0]
    present = pooled.gather(0, torch.from_numpy(resized).long()[None])[0]
    return int((present == 0).sum())


@settings(max_examples=40, deadline=None)
@given(
    st.tuples(st.integers(2, 40), st.integers(2, 40), st.integers(1, 30), st.integers(1, 30)),
    st.integers(0, 2**32 - 1),
)
def test_invented_pixels_of_probability_space_are_counted_over_its_area_windows(shapes, seed):
    height, width, target_height, target_width = shapes
    generator = np.random.default_rng(seed)
    source = generator.integers(0, 4, (height, width), dtype=np.uint8)
    resized = generator.integers(0, 4, (target_height, target_width), dtype=np.uint8)
    assert invented_count("probability", source, resized) == one_hot_invented(source, resized)


def test_the_report_adds_probability_space_to_the_resizing_panel(run):
    out, _, _ = run
    image_ids, labels = read_label_shard(out / "labels.npz")
    _, area = read_label_shard(out / "area.npz")
    truths = resize_label_maps(labels, SIZE, "albumentations", "nearest")
    comparison, _ = compare_interpolations(
        [list(labels)], [list(truths)], SIZE, len(CLASSES), area_spans=[list(area)]
    )
    methods = comparison["methods"]
    assert list(methods) == ["nearest", "bilinear", "block_max", "probability"]
    result = methods["probability"]
    assert result["changed"] == pytest.approx((np.asarray(area) != truths).mean())
    invented = sum(one_hot_invented(s, r) for s, r in zip(labels, area, strict=True))
    assert result["invented_pixels"] == invented
    assert result["invented"] == pytest.approx(invented / np.asarray(area).size)
    assert result["miou_delta"] == pytest.approx(result["scores"]["miou"] - 1.0)
    page = score_table_html({"24x24": comparison["nearest"]}, CLASSES, comparison)
    assert "probability space (area mean, argmax)" in page and f"({invented:,} px)" in page
    without, _ = compare_interpolations([list(labels)], [list(truths)], SIZE, len(CLASSES))
    assert without["methods"]["probability"] is None
    page = score_table_html({"24x24": without["nearest"]}, CLASSES, without)
    assert "n/a (the model's backend gives no class probabilities)" in page


def test_pseudo_labels_with_a_threshold_leave_unsure_pixels_out(run, tmp_path):
    out, entries, _ = run
    target = tmp_path / "pseudo"
    pseudo_labels_stage(
        out / "manifest.json", [out / "confident.npz"], target, CLASSES, THRESHOLD, 255
    )
    from pycocotools.coco import COCO

    coco = COCO(str(target / "annotations.json"))
    _, confident = read_label_shard(out / "confident.npz")
    for entry, label_map in zip(entries, confident, strict=True):
        png = target / "ann_dir" / (entry.file_name.rsplit(".", 1)[0] + ".png")
        assert np.array_equal(np.asarray(Image.open(png)), label_map)
        covered = np.zeros(label_map.shape, bool)
        for annotation in coco.loadAnns(coco.getAnnIds(imgIds=entry.id)):
            mask = coco.annToMask(annotation) == 1
            assert (label_map[mask] == annotation["category_id"]).all()
            covered |= mask
        assert np.array_equal(covered, (label_map != 0) & (label_map != 255))


class LabelsOnlyPredictor(Predictor):
    """A plug-in's predictor that post-processes its model's outputs into labels itself."""

    def predict_prepared(self, prepared, size):
        return torch.zeros((len(prepared), *size), dtype=torch.uint8, device=self.device)


class LabelsOnlyBackend(Backend):
    """A plug-in backend declaring that its predictor gives labels only."""

    name = "labels_only"
    probabilities = False
    trains_demo_model = True

    @staticmethod
    def load(settings, device):
        return LabelsOnlyPredictor(device, settings.num_classes, settings.precision)


@pytest.fixture
def labels_only_backend(monkeypatch):
    """`LabelsOnlyBackend` registered for one test."""
    monkeypatch.setitem(BACKENDS, LabelsOnlyBackend.name, LabelsOnlyBackend)
    return LabelsOnlyBackend


def test_the_backend_declaration_says_whether_its_predictor_gives_probabilities(
    tmp_path, labels_only_backend
):
    weights = save_random_model(tmp_path / "model.pt")
    predictor = load_predictor(model_settings("torchvision", str(weights), device="cpu"))
    assert backend_named("torchvision").probabilities and has_probabilities(predictor)
    assert all(
        backend.probabilities for name, backend in BACKENDS.items() if name != "labels_only"
    )  # every built-in backend's predictor gives them (transformers: the processor's scores)
    settings = model_settings("labels_only", str(weights), device="cpu")
    assert not has_probabilities(load_predictor(settings))
    root = make_dataset(tmp_path / "data", {"val": 1}, size=32)
    manifest_stage(root / "val.json", root, CLASSES, tmp_path / "m.json", [tmp_path / "0.json"])
    area = ProbabilityOutputs(area_labels=str(tmp_path / "area.npz"), size=(16, 16))
    infer = InferSettings(batch_size=1, workers=0)
    with pytest.raises(SegsubmitError, match="labels_only: its predictor gives no class prob"):
        infer_stage(tmp_path / "0.json", tmp_path / "l.npz", settings, infer, outputs=area)
    assert not (tmp_path / "l.npz").exists() and not (tmp_path / "area.npz").exists()


def changed(**sections):
    config = default_config()
    for section, values in sections.items():
        config[section] = {**config[section], **values}
    return config


LABELS_ONLY = {"backend": "labels_only", "weights": None, "labels_only": {}}


@pytest.mark.parametrize(
    ("sections", "message"),
    [
        (
            {"model": LABELS_ONLY, "resize": {"interpolation": "probability"}},
            "resize.interpolation: probability: model.backend labels_only gives no class "
            "probabilities",
        ),
        (
            {"model": LABELS_ONLY, "pseudo_labels": {"splits": ["val"], "threshold": 0.9}},
            "pseudo_labels.threshold: model.backend labels_only gives no class probabilities",
        ),
        (
            {"pseudo_labels": {"splits": ["val"], "threshold": 0.9, "ignore_index": 5}},
            "pseudo_labels.ignore_index: 5 is the class 'Glass'; choose a value from 11 to 255",
        ),
        (
            {"demo": {"image_size": 500}, "resize": {"interpolation": "block_max"}},
            r"block_max needs sides that are whole multiples of resize.size, and 500x500 -> "
            r"256x256 is not; use nearest \(demo.image_size\)",
        ),
    ],
)
def test_settings_probability_space_and_block_max_cannot_serve_are_refused(
    sections, message, labels_only_backend
):
    check_config(changed(resize={"interpolation": "probability"}))
    check_config(changed(pseudo_labels={"splits": ["val"], "threshold": 0.9}))
    with pytest.raises(SegsubmitError, match=message) as error:
        check_config(changed(**sections))
    assert "\n" not in str(error.value)


def test_block_max_is_refused_from_the_jsons_image_sizes(tmp_path):
    make_dataset(tmp_path / "data", {"val": 2}, size=64)
    config = changed(resize={"interpolation": "block_max", "size": [32, 32]})
    config["data"] = {**config["data"], "root": "data", "splits": ["val"], "score": ["val"]}
    config["model"] = {**config["model"], "weights": "model.pt"}
    (tmp_path / "model.pt").write_bytes(b"weights")
    check_config(config, tmp_path)
    coco = json.loads((tmp_path / "data/val.json").read_text())
    coco["images"][1] = {**coco["images"][1], "width": 50}
    (tmp_path / "data/val.json").write_text(json.dumps(coco))
    name = coco["images"][1]["file_name"]
    message = rf"64x50 -> 32x32 is not; use nearest \(.*val.json, '{name}'\)"
    with pytest.raises(SegsubmitError, match=message):
        check_config(config, tmp_path)
