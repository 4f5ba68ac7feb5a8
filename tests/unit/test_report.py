"""The report's pure functions on synthetic maps: palette, overlays, the nearest-vs-bilinear
comparison, sample choice, score table, benchmark parsing and atomic PNG files."""

import re

import numpy as np
import pytest

from segsubmit.metrics import score_images
from segsubmit.report import (
    BASE_PALETTE,
    benchmark_runtimes,
    boundary_window,
    class_palette,
    colorize,
    compare_interpolations,
    confusion_figure,
    interpolation_figure,
    invented_mask,
    iou_bar_figure,
    member_gains,
    overlay,
    per_image_miou,
    pick_samples,
    report_members_stage,
    runtimes_page_html,
    samples_figure,
    save_figure,
    score_table_html,
)
from segsubmit.resize import resize_label_maps
from segsubmit.testing import CLASSES


def blob_maps(count=3, size=64, seed=0):
    """Label maps with a few rectangles of classes 1..10 on background."""
    rng = np.random.default_rng(seed)
    maps = np.zeros((count, size, size), dtype=np.uint8)
    for label_map in maps:
        for _ in range(4):
            top, left = rng.integers(0, size - 12, 2)
            height, width = rng.integers(5, 12, 2)
            label_map[top : top + height, left : left + width] = rng.integers(1, 11)
    return maps


def test_palette_is_fixed_per_class_index():
    assert [tuple(c) for c in class_palette(11)] == list(BASE_PALETTE)
    larger = class_palette(30)
    assert (larger[:11] == class_palette(11)).all() and (larger == class_palette(30)).all()
    assert len({tuple(c) for c in larger}) == 30
    assert (class_palette(3) == class_palette(11)[:3]).all()


def test_colorize_and_overlay_shapes():
    palette = class_palette(11)
    label_map = np.array([[0, 1], [9, 200]], dtype=np.uint8)
    colours = colorize(label_map, palette)
    assert colours.shape == (2, 2, 3) and colours.dtype == np.uint8
    assert tuple(colours[0, 1]) == BASE_PALETTE[1] and tuple(colours[1, 1]) == (255, 255, 255)
    image = np.full((64, 48, 3), 100, dtype=np.uint8)  # another size than the map
    label_map = np.zeros((32, 24), dtype=np.uint8)
    label_map[:8] = 1
    blended = overlay(image, label_map, palette, alpha=0.5)  # grey 100 stays 100
    assert blended.shape == (32, 24, 3) and blended.dtype == np.uint8
    assert (blended[8:] == 100).all()  # background keeps the image
    assert (blended[:8] == np.round((100 + np.array(BASE_PALETTE[1])) / 2)).all()


def test_bilinear_invents_classes_and_costs_miou():
    maps = blob_maps()
    maps[0, :, 20:41] = 1
    maps[0, :, 41:] = 9  # output column 20 blends source columns 40 (1) and 41 (9): 5
    truths = resize_label_maps(maps, (32, 32), "albumentations")
    spans = ([maps[:1], maps[1:]], [truths[:1], truths[1:]])  # two spans, as the stage streams
    comparison, changed = compare_interpolations(*spans, (32, 32), 11)
    bilinear = resize_label_maps(maps, (32, 32), "albumentations", "bilinear")
    assert comparison["nearest"]["miou"] == pytest.approx(1.0)
    assert comparison["bilinear"]["miou"] < 0.95 and comparison["miou_cost"] < -0.05
    assert 0 < comparison["invented"] <= comparison["changed"] < 0.5
    assert (bilinear[0][:, 20] == 5).all()
    assert comparison["bilinear"] == score_images(truths, bilinear, 11)
    assert changed.tolist() == (bilinear != truths).reshape(len(maps), -1).sum(axis=1).tolist()


def test_invented_mask_marks_classes_of_no_source_pixel():
    source = np.zeros((4, 8), dtype=np.uint8)
    source[:, 5:] = 10
    resized = resize_label_maps(source[None], (4, 4), "albumentations", "bilinear")[0]
    assert (resized[:, 2] == 5).all()  # blended from 0 and 10
    assert (invented_mask(source, resized) == (resized == 5)).all()
    assert not invented_mask(source, resize_label_maps(source[None], (4, 4), "kornia")[0]).any()


def test_boundary_window_finds_the_changed_pixels():
    changed = np.zeros((20, 20), dtype=bool)
    changed[12:14, 3:5] = True
    top, left, side = boundary_window(changed, 6)
    assert side == 6
    assert top <= 12 and top + side >= 14 and left <= 3 and left + side >= 5


def test_per_image_scores_and_sample_choice():
    truths = blob_maps(4)
    predictions = truths.copy()
    predictions[2] = 0
    scores = per_image_miou(truths, predictions, 11)
    assert scores[0] == 1.0 and scores[2] < 1.0
    # worst two first, then the first and last of the rest (NaN counts as best)
    image_scores = np.array([0.9, 0.2, np.nan, 0.5, 0.7, 0.1])
    assert pick_samples(image_scores, worst=2, others=2) == [5, 1, 0, 4]
    assert pick_samples(np.array([0.3]), worst=3, others=3) == [0]


def test_score_table_holds_every_class_and_both_means():
    truths = blob_maps()
    scores = score_images(truths, truths // 2, 11)
    comparison, _ = compare_interpolations([truths], [truths], (64, 64), 11)
    page = score_table_html({"64x64": scores}, CLASSES, comparison)
    for name in CLASSES:
        assert name in page
    assert f"{scores['miou']:.4f}" in page and f"{scores['per_image_mean_miou']:.4f}" in page
    assert 'id="interpolation"' in page and "n/a" in page
    assert "&lt;x&gt;" in score_table_html({"s": scores}, [*CLASSES[:-1], "<x>"])


def test_benchmark_runtimes_are_read_and_figures_written_as_png(tmp_path):
    header = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    for rule, job, seconds in (("infer", "val/0", 3.5), ("infer", "val/1", 1.5), ("score", "v", 1)):
        path = tmp_path / "benchmarks" / rule / f"{job}.tsv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(header + f"{seconds}\t0:00:03\t1\t1\t1\t1\t0\t0\t0\t0\n")
    runtimes = benchmark_runtimes(tmp_path / "benchmarks")
    assert runtimes == {"infer": [("val/0", 3.5), ("val/1", 1.5)], "score": [("v", 1.0)]}
    truths = blob_maps(2)
    scores = score_images(truths, truths, 11)
    comparison, _ = compare_interpolations([truths], [truths[:, ::2, ::2]], (32, 32), 11)
    nearest, bilinear = (
        resize_label_maps(truths[:1], (32, 32), "albumentations", mode)[0]
        for mode in ("nearest", "bilinear")
    )
    image = np.zeros((64, 64, 3), np.uint8)
    figures = {
        "iou": iou_bar_figure(scores, CLASSES),
        "confusion": confusion_figure(scores["confusion_matrix"], CLASSES),
        "samples": samples_figure(
            [{"title": "a", "image": image, "truth": m, "prediction": m} for m in truths], CLASSES
        ),
        "interpolation": interpolation_figure(
            comparison, truths[0, ::2, ::2], nearest, bilinear, "a", CLASSES
        ),
    }
    for name, figure in figures.items():
        save_figure(figure, tmp_path / "out" / f"{name}.png")
        assert (tmp_path / "out" / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        f"{name}.png" for name in figures
    )  # no temporary files left behind


def test_runtimes_page_lists_rules_slowest_first_with_their_bars():
    runtimes = {"score": [("v", 1.0)], "infer": [("val/0", 3.5), ("val/1", 1.5)], "<x>": [("a", 0)]}
    page = runtimes_page_html(runtimes)
    rows = re.findall(r'<tr><td class="name">([^<]+)</td><td>(\d+)</td><td>([0-9.]+)</td>'
                      r'<td>([0-9.]+)</td><td class="name">([^<]+)</td>', page)  # fmt: skip
    assert rows == [("infer", "2", "5.00", "3.50", "val/0"), ("score", "1", "1.00", "1.00", "v"),
                    ("&lt;x&gt;", "1", "0.00", "0.00", "a")]  # fmt: skip
    assert 'class="all" style="width:100.0%"' in page and 'style="width:70.0%"' in page
    assert "no benchmark files yet" in runtimes_page_html({})


def all_figures(class_names, title):
    """Every per-split figure of `class_names` on blob maps, drawn (as PNG bytes)."""
    import io

    count = len(class_names)
    rng = np.random.default_rng(0)
    truths = rng.integers(0, count, (6, 64, 64)).astype(np.uint8)
    predictions = rng.integers(0, count, (6, 64, 64)).astype(np.uint8)
    scores = score_images(truths, predictions, count)
    comparison, _ = compare_interpolations([predictions], [truths[:, ::2, ::2]], (32, 32), count)
    nearest, bilinear = (
        resize_label_maps(predictions[:1], (32, 32), "albumentations", mode)[0]
        for mode in ("nearest", "bilinear")
    )
    image = np.zeros((64, 64, 3), np.uint8)
    samples = [{"title": title, "image": image, "truth": t, "prediction": p}
               for t, p in zip(truths, predictions, strict=True)]  # fmt: skip
    figures = [
        iou_bar_figure(scores, class_names),
        confusion_figure(scores["confusion_matrix"], class_names),
        samples_figure(samples, class_names),
        interpolation_figure(
            comparison, truths[0, ::2, ::2], nearest, bilinear, title, class_names
        ),
    ]
    pngs = []
    for figure in figures:
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
        pngs.append(buffer.getvalue())
    return pngs, score_table_html({"32x32": scores}, class_names, comparison)


def test_user_text_is_drawn_literally():
    """Class and file names holding mathtext ($), backslashes, underscores or HTML are drawn as
    written: no figure fails (an unbalanced `$` did, after the CSV and score were written)."""
    names = ["Back$ground", "x$a_b_c$y", "$\\frac$", "back\\slash", "under_score", "<b>&amp;"]
    pngs, page = all_figures(names + CLASSES[len(names) :], "batch_01/we$ird_\\name$.jpg")
    assert all(png[:8] == b"\x89PNG\r\n\x1a\n" for png in pngs)
    assert "&lt;b&gt;&amp;amp;" in page and "<b>" not in page.split("<body>")[1]


def test_figures_cost_is_bounded_with_256_classes():
    """The schema allows 256 classes: every figure stays within a bounded size, time and
    memory (per-cell text and one tick per class made them take GBs and tens of seconds)."""
    import resource
    import time

    names = [f"class {index}" for index in range(256)]
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB
    started = time.perf_counter()
    pngs, _ = all_figures(names, "a.jpg")
    seconds = time.perf_counter() - started
    growth_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before) / 1024
    assert seconds < 30 and growth_mb < 1024, (seconds, growth_mb)
    assert max(len(png) for png in pngs) < 5_000_000


def test_member_report_shows_each_member_against_the_ensemble(tmp_path):
    import json

    truths = blob_maps()
    members = {
        "unet": score_images(truths, truths // 2, 11),
        "deeplab": score_images(truths, truths, 11),
    }
    ensemble = score_images(truths, np.where(truths > 4, truths, 0), 11)
    paths = []
    for name, scores in [*members.items(), ("ensemble", ensemble)]:
        paths.append(tmp_path / f"{name}.json")
        paths[-1].write_text(json.dumps(scores))
    search = {
        "members": ["unet", "deeplab"],
        "configured_weights": [1, 1],
        "searched_weights": [0.5, 2],
        "evaluations": 9,
        "images": {"search": 2, "held_out": 1},
        "miou": {
            part: {"configured": 0.5, "searched": 0.6, "gain": 0.1}
            for part in ("search", "held_out", "split")
        },
    }
    (tmp_path / "search.json").write_text(json.dumps(search))
    outputs = {"table": tmp_path / "members.html", "chart": tmp_path / "members_iou.png"}
    report_members_stage(
        paths[:2], paths[2], list(members), CLASSES, outputs, [tmp_path / "search.json"]
    )
    page = outputs["table"].read_text()
    assert "<th>unet</th><th>deeplab</th><th>ensemble</th>" in page
    assert f"{ensemble['miou']:.4f}" in page and f"{members['unet']['miou']:.4f}" in page
    assert "unet 1 &rarr; 0.5, deeplab 1 &rarr; 2" in page and "+0.1000" in page
    assert outputs["chart"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    gains = member_gains(list(members.values()), ensemble)
    assert gains.shape == (2, 11)
    expected = np.array(members["deeplab"]["per_class_iou"], dtype=float) - np.array(
        [np.nan if v is None else v for v in ensemble["per_class_iou"]]
    )
    np.testing.assert_allclose(gains[1], expected)
    report_members_stage(paths[:1], paths[2], ["unet"], CLASSES, outputs)  # no search
    assert "Weight search" not in outputs["table"].read_text()
