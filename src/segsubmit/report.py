"""Figures and tables for `snakemake --report`: the score table, per-class IoU, the confusion
matrix, sample overlays (worst images first), per-rule runtimes and the resizing panel
(nearest, bilinear, block max, probability space). Functions take arrays, dicts and paths and
return figures or strings; `save_figure` and `save_text` write files atomically. matplotlib is
used through `Figure` (Agg), never pyplot."""

import colorsys
import csv
import html
import logging
import warnings
from pathlib import Path

import numpy as np

from .atomic import atomic_path
from .labels import LabelShard, batched, maps_in_order
from .manifest import Manifest
from .metrics import confusion_matrix, image_confusions, iou_per_class, scores_from_confusions
from .resize import MAPS_AT_ONCE, resize_label_maps

log = logging.getLogger(__name__)

# One fixed colour per class index (the competition's 11 first), the same in every figure.
BASE_PALETTE = (
    (0, 0, 0),  # background
    (230, 25, 75),
    (60, 180, 75),
    (255, 225, 25),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
    (250, 190, 212),
)
OUT_OF_RANGE_COLOUR = (255, 255, 255)
# Bounds on every figure's cost whatever the class count (the schema allows 256): above
# LABELED_CLASSES, no per-class text in charts and at most that many tick labels; no figure side
# beyond MAX_INCHES (at 100 dpi).
LABELED_CLASSES = 40
MAX_INCHES = 16


def literal(text):
    """User text (class and file names) as matplotlib draws it literally: `$` would start
    mathtext (an unbalanced one fails the figure)."""
    return str(text).replace("$", r"\$")


def tick_stride(count, limit=LABELED_CLASSES):
    """Label every n-th of `count` ticks so that at most `limit` are labelled."""
    return max(1, -(-count // limit))


def set_class_ticks(axes, class_names, axis="y", rotation=0):
    """Class-name ticks on `axis`, every `tick_stride`-th class (index and name)."""
    positions = np.arange(0, len(class_names), tick_stride(len(class_names)))
    labels = [literal(f"{i} {class_names[i]}") for i in positions]
    if axis == "y":
        axes.set_yticks(positions, labels)
    else:
        axes.set_xticks(positions, labels, rotation=rotation, ha="right" if rotation else "center")


def class_palette(num_classes):
    """(num_classes, 3) uint8 colours: BASE_PALETTE, then golden-ratio hues for more classes;
    fixed by the class index alone, so a class keeps its colour across runs and figures."""
    colours = list(BASE_PALETTE[:num_classes])
    for index in range(len(colours), num_classes):
        hue = (index * 0.618033988749895) % 1.0
        colours.append(tuple(round(255 * c) for c in colorsys.hsv_to_rgb(hue, 0.75, 0.95)))
    return np.array(colours, dtype=np.uint8).reshape(num_classes, 3)


def colorize(label_map, palette):
    """(H, W) class indices -> (H, W, 3) uint8 colours; indices beyond the palette are white."""
    lookup = np.tile(np.array(OUT_OF_RANGE_COLOUR, dtype=np.uint8), (256, 1))
    lookup[: len(palette)] = palette
    return lookup[np.asarray(label_map, dtype=np.uint8)]


def fit_image(image, shape):
    """RGB uint8 image resized (bilinear: it is a photo, not labels) to `shape` (h, w)."""
    from PIL import Image

    image = np.asarray(image, dtype=np.uint8)
    if image.shape[:2] == tuple(shape):
        return image
    resized = Image.fromarray(image).resize((shape[1], shape[0]), Image.Resampling.BILINEAR)
    return np.asarray(resized)


def overlay(image, label_map, palette, alpha=0.6):
    """A greyscale copy of the image (resized to the map's size) blended with the map's
    colours, so that class colours stand out on any photo; background (0) pixels keep the
    grey image. (H, W, 3) uint8 with (H, W) = label_map.shape."""
    rgb = fit_image(image, label_map.shape).astype(np.float32)
    base = np.repeat(rgb @ np.array([0.299, 0.587, 0.114], np.float32), 3).reshape(rgb.shape)
    colours = colorize(label_map, palette).astype(np.float32)
    weight = np.where(np.asarray(label_map)[..., None] == 0, 0.0, alpha)
    return np.round(base * (1 - weight) + colours * weight).astype(np.uint8)


def load_image(path, height, width):
    """RGB uint8 (H, W, 3) with EXIF orientation applied, as the annotations see it; mid-grey
    for a file that can't be decoded (inference blanked it: `infer.on_bad_image: blank`)."""
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as image:
            return np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        log.warning("report: %s shown grey: cannot decode it (%s)", path, err)
        return np.full((height, width, 3), 128, np.uint8)


def per_image_miou(truths, predictions, num_classes, ignore_index=None):
    """mIoU of each image on its own (NaN for an image without valid truth pixels)."""
    ious = np.array(
        [
            iou_per_class(confusion_matrix(truth, predicted, num_classes, ignore_index))
            for truth, predicted in zip(truths, predictions, strict=True)
        ]
    ).reshape(-1, num_classes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(ious, axis=1)


def pick_samples(scores, worst=3, others=3):
    """Indices to show: the `worst` lowest-scoring images (NaN last), then `others` spread
    evenly over the remaining ones in their original order."""
    order = np.argsort(np.where(np.isnan(scores), np.inf, scores), kind="stable")
    chosen = [int(i) for i in order[:worst]]
    rest = sorted(int(i) for i in order[worst:])
    if rest and others > 0:
        positions = np.linspace(0, len(rest) - 1, min(others, len(rest))).round().astype(int)
        chosen += [rest[p] for p in dict.fromkeys(positions.tolist())]
    return chosen


def _format_iou(value):
    return "n/a" if value is None or np.isnan(value) else f"{value:.4f}"


PAGE_STYLE = (
    "body{font-family:sans-serif}table{border-collapse:collapse;margin:1em 0}"
    "td,th{border:1px solid #ccc;padding:3px 10px;text-align:right}"
    "td.name,th{text-align:left}tr.summary{background:#eef}td.best{font-weight:bold}"
    "td.bar{width:24em}div.all{background:#1f77b4;height:1em}"
    "div.slowest{background:#ff7f0e;height:0.5em}"
)


def page_head(title):
    """The start of a standalone report page, up to its open body."""
    return (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{PAGE_STYLE}</style></head><body>"
    )


def score_table_html(scores_by_size, class_names, interpolation=None):
    """A standalone HTML page: per-class IoU, dataset mIoU, per-image-mean mIoU and pixel
    accuracy, one column per scored size; `interpolation` (from `compare_interpolations`)
    adds the nearest-vs-bilinear rows."""
    sizes = list(scores_by_size)
    head = "".join(f"<th>IoU at {html.escape(size)}</th>" for size in sizes)
    rows = []
    for index, name in enumerate(class_names):
        cells = "".join(
            f"<td>{_format_iou(scores_by_size[s]['per_class_iou'][index])}</td>" for s in sizes
        )
        rows.append(f'<tr><td class="name">{index} {html.escape(name)}</td>{cells}</tr>')
    for label, key in (
        ("mIoU (dataset, competition metric)", "miou"),
        ("mIoU (per-image mean)", "per_image_mean_miou"),
        ("pixel accuracy", "pixel_accuracy"),
    ):
        cells = "".join(f"<td>{_format_iou(scores_by_size[s].get(key))}</td>" for s in sizes)
        rows.append(f'<tr class="summary" id="{key}"><th>{label}</th>{cells}</tr>')
    images = ", ".join(f"{scores_by_size[s]['images']} at {s}" for s in sizes)
    extra = ""
    if interpolation is not None:
        method_rows = []
        for method, result in interpolation["methods"].items():
            if result is None:
                method_rows.append(
                    f"<tr><td>{METHOD_LABELS[method]}</td><td colspan='4'>n/a "
                    f"({NOT_AVAILABLE[method]})</td></tr>"
                )
                continue
            method_rows.append(
                f"<tr><td>{METHOD_LABELS[method]}</td><td>{result['scores']['miou']:.4f}</td>"
                f"<td>{result['miou_delta']:+.4f}</td><td>{100 * result['changed']:.2f} %</td>"
                f"<td>{100 * result['invented']:.2f} % ({result['invented_pixels']:,} px)</td></tr>"
            )
        extra = (
            "<h2>Resizing the predictions: nearest vs bilinear vs block max vs probability "
            "space</h2>"
            '<table id="interpolation"><tr><th>resize</th><th>mIoU</th><th>vs nearest</th>'
            "<th>pixels changed (vs nearest)</th>"
            "<th>pixels given a class none of their source pixels has</th></tr>"
            f"{''.join(method_rows)}</table>"
        )
    return (
        f"{page_head('segsubmit scores')}<h1>Scores</h1>"
        f'<p>Images scored: {images}.</p><table id="scores">'
        f"<tr><th>class</th>{head}</tr>{''.join(rows)}</table>{extra}</body></html>\n"
    )


def new_figure(width, height):
    """A matplotlib Figure on the Agg canvas (no pyplot, no global state)."""
    from matplotlib.figure import Figure

    return Figure(
        figsize=(min(width, MAX_INCHES), min(height, MAX_INCHES)), dpi=100, layout="constrained"
    )


def iou_bar_figure(scores, class_names):
    """Horizontal bars of per-class IoU, the dataset mIoU as a dashed line."""
    figure = new_figure(7, 0.35 * len(class_names) + 1.2)
    axes = figure.add_subplot()
    values = [np.nan if v is None else v for v in scores["per_class_iou"]]
    positions = np.arange(len(class_names))
    axes.barh(positions, np.nan_to_num(values), color=class_palette(len(class_names)) / 255)
    if len(class_names) <= LABELED_CLASSES:
        for position, value in zip(positions, values, strict=True):
            axes.text(np.nan_to_num(value) + 0.01, position, _format_iou(value), va="center")
    axes.axvline(scores["miou"], color="grey", linestyle="--")
    set_class_ticks(axes, class_names)
    axes.invert_yaxis()
    axes.set_xlim(0, 1.12)
    axes.set_xlabel("IoU")
    axes.set_title(
        f"Per-class IoU at {scores.get('size', 'submission size')} ({scores['images']} images);"
        f" dashed: mIoU {scores['miou']:.4f}"
    )
    return figure


def confusion_figure(confusion, class_names):
    """Heatmap of the confusion matrix normalised per true class, counts written in (up to
    LABELED_CLASSES classes; above, the heatmap alone: one image whatever the class count)."""
    confusion = np.asarray(confusion, dtype=np.int64)
    totals = confusion.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(totals > 0, confusion / np.maximum(totals, 1), 0.0)
    size = 0.55 * len(class_names) + 2.5
    figure = new_figure(size + 1.5, size)
    axes = figure.add_subplot()
    image = axes.imshow(share, cmap="Blues", vmin=0, vmax=1, interpolation="nearest")
    set_class_ticks(axes, class_names, "x", rotation=45)
    set_class_ticks(axes, class_names)
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    cells = zip(*np.nonzero(confusion), strict=True) if len(class_names) <= LABELED_CLASSES else ()
    for row, column in cells:
        colour = "white" if share[row, column] > 0.5 else "black"
        text = f"{share[row, column]:.2f}\n{confusion[row, column]}"
        axes.text(column, row, text, ha="center", va="center", fontsize=6, color=colour)
    figure.colorbar(image, ax=axes, label="share of the true class's pixels")
    axes.set_title("Confusion matrix (rows: truth, normalised per row; count below)")
    return figure


def add_legend(figure, class_names, palette, label_maps=None):
    """A legend of the classes' colours under the figure: those present in `label_maps` (all
    when None), at most LABELED_CLASSES of them."""
    from matplotlib.patches import Patch

    shown = range(len(class_names))
    if label_maps is not None:
        present = np.unique(np.concatenate([np.unique(np.asarray(m)) for m in label_maps]))
        shown = [int(i) for i in present if i < len(class_names)]
    handles = [
        Patch(facecolor=palette[i] / 255, edgecolor="grey", label=literal(f"{i} {class_names[i]}"))
        for i in list(shown)[:LABELED_CLASSES]
    ]
    if not handles:
        return
    figure.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 6))


def samples_figure(samples, class_names):
    """One row per sample dict (title, image, truth, prediction): the image, the ground truth
    over it and the prediction over it, with the class legend."""
    palette = class_palette(len(class_names))
    figure = new_figure(9, 2.8 * len(samples) + 1.2)
    grid = figure.subplots(len(samples), 3, squeeze=False)
    for row, sample in zip(grid, samples, strict=True):
        shape = sample["truth"].shape
        panels = (
            (fit_image(sample["image"], shape), "image"),
            (overlay(sample["image"], sample["truth"], palette), "ground truth"),
            (overlay(sample["image"], sample["prediction"], palette), "prediction"),
        )
        for axes, (pixels, label) in zip(row, panels, strict=True):
            axes.imshow(pixels, interpolation="nearest")
            axes.set_xticks([])
            axes.set_yticks([])
            axes.set_title(label, fontsize=9)
        row[0].set_ylabel(literal(sample["title"]), fontsize=8)
    maps = [m for sample in samples for m in (sample["truth"], sample["prediction"])]
    add_legend(figure, class_names, palette, maps)
    return figure


def bilinear_sources(shape, size):
    """For each output row (and column) of a bilinear resize from `shape` to `size`, the two
    source indices it blends (half-pixel centres, as OpenCV and Kornia use)."""
    pairs = []
    for source, target in zip(shape, size, strict=True):
        position = (np.arange(target) + 0.5) * source / target - 0.5
        low = np.clip(np.floor(position).astype(np.int64), 0, source - 1)
        pairs.append((low, np.clip(low + 1, 0, source - 1)))
    return pairs


def invented_mask(source, resized):
    """Pixels of a bilinearly resized label map whose class is in none of the (up to) four
    source pixels it was blended from."""
    (rows_low, rows_high), (cols_low, cols_high) = bilinear_sources(source.shape, resized.shape)
    invented = np.ones(resized.shape, dtype=bool)
    for rows in (rows_low, rows_high):
        for cols in (cols_low, cols_high):
            invented &= source[np.ix_(rows, cols)] != resized
    return invented


def area_windows(source, target):
    """Index arrays covering, between them, each output index's source window
    `[floor(i * source / target), ceil((i + 1) * source / target))` of an area average (torch's
    `mode="area"`, adaptive average pooling); a shorter window repeats its last index."""
    index = np.arange(target)
    start, end = index * source // target, -(-(index + 1) * source // target)
    return [np.minimum(start + offset, end - 1) for offset in range(int((end - start).max()))]


def source_grids(method, shape, size):
    """The (rows, columns) index grids of the source pixels each output pixel of `method` is
    computed from: nearest's one (floor rule), bilinear's four, block max's kh x kw block,
    probability space's area window."""
    if method == "probability":
        rows, cols = (area_windows(n, m) for n, m in zip(shape, size, strict=True))
        return [(r, c) for r in rows for c in cols]
    if method == "bilinear":
        (rows_low, rows_high), (cols_low, cols_high) = bilinear_sources(shape, size)
        return [(r, c) for r in (rows_low, rows_high) for c in (cols_low, cols_high)]
    if method == "block_max":
        kh, kw = shape[0] // size[0], shape[1] // size[1]
        rows, cols = np.arange(size[0]) * kh, np.arange(size[1]) * kw
        return [(rows + i, cols + j) for i in range(kh) for j in range(kw)]
    rows = np.floor(np.arange(size[0]) * (shape[0] / size[0])).astype(np.int64)
    cols = np.floor(np.arange(size[1]) * (shape[1] / size[1])).astype(np.int64)
    return [(rows, cols)]


def invented_count(method, source, resized):
    """Pixels of `resized` whose class is in none of the source pixels `method` computed them
    from (0 for nearest and block max by construction: counted, not assumed; probability space
    can: its argmax of averaged probabilities may be no source pixel's argmax)."""
    source = np.asarray(source)
    invented = np.ones(resized.shape, dtype=bool)
    for rows, cols in source_grids(method, source.shape, resized.shape):
        invented &= source[np.ix_(rows, cols)] != resized
    return int(invented.sum())


def block_max_applies(label_maps, size):
    """Whether every map's sides are whole multiples of `size` (a block max needs them)."""
    return all(m.shape[0] % size[0] == 0 and m.shape[1] % size[1] == 0 for m in label_maps)


INTERPOLATION_METHODS = ("nearest", "bilinear", "block_max", "probability")
NOT_AVAILABLE = {
    "block_max": "sides not whole multiples of the submission size",
    "probability": "the model's backend gives no class probabilities",
}


def compare_interpolations(
    label_spans,
    truth_spans,
    size,
    num_classes,
    backend="albumentations",
    ignore_index=None,
    area_spans=None,
):
    """This run's label maps resized to `size` with nearest, bilinear and a block max over
    label ids, and the infer stage's probability-space maps (`area_spans`: the argmax of the
    area-averaged probabilities at `size`), each scored against the truths (at `size`), a span
    of maps at a time (aligned iterables of lists). Per method (`methods`): its scores, mIoU
    minus nearest's, the share of pixels that differ from nearest and of pixels given a class
    none of their source pixels has; block max is None when a map's sides are not whole
    multiples of `size`, probability when there are no `area_spans`. The top-level
    nearest/bilinear/miou_cost/changed/invented keys are bilinear's against nearest. Also
    returned: the pixels bilinear changed in each image."""
    confusions = {name: [] for name in INTERPOLATION_METHODS}
    changed = {name: 0 for name in INTERPOLATION_METHODS}
    invented = dict(changed)
    per_image, pixels, block_max_ok = [], 0, True
    areas = iter(area_spans) if area_spans is not None else None
    for label_maps, truths in zip(label_spans, truth_spans, strict=True):
        block_max_ok = block_max_ok and block_max_applies(label_maps, size)
        methods = [m for m in INTERPOLATION_METHODS[:3] if block_max_ok or m != "block_max"]
        resized = {m: resize_label_maps(label_maps, size, backend, m) for m in methods}
        if areas is not None:
            resized["probability"] = np.stack(next(areas))
            methods.append("probability")
        for method in methods:
            confusions[method].append(
                image_confusions(truths, resized[method], num_classes, ignore_index)
            )
            changed[method] += int((resized[method] != resized["nearest"]).sum())
            invented[method] += sum(
                invented_count(method, source, out)
                for source, out in zip(label_maps, resized[method], strict=True)
            )
        per_image.extend(
            (resized["nearest"] != resized["bilinear"]).reshape(len(label_maps), -1).sum(1).tolist()
        )
        pixels += resized["nearest"].size
    empty = np.zeros((0, num_classes, num_classes), int)
    results = {}
    for method in INTERPOLATION_METHODS:
        if (method == "block_max" and not block_max_ok) or (
            method == "probability" and areas is None
        ):
            results[method] = None
            continue
        parts = confusions[method]
        results[method] = {
            "scores": scores_from_confusions(np.concatenate(parts) if parts else empty),
            "changed": changed[method] / max(pixels, 1),
            "invented": invented[method] / max(pixels, 1),
            "invented_pixels": invented[method],
        }
    nearest_miou = results["nearest"]["scores"]["miou"]
    for result in results.values():
        if result is not None:
            result["miou_delta"] = result["scores"]["miou"] - nearest_miou
    comparison = {
        "methods": results,
        "nearest": results["nearest"]["scores"],
        "bilinear": results["bilinear"]["scores"],
        "block_max": results["block_max"] and results["block_max"]["scores"],
        "miou_cost": results["bilinear"]["miou_delta"],
        "changed": results["bilinear"]["changed"],
        "invented": results["bilinear"]["invented"],
        "backend": backend,
    }
    return comparison, np.array(per_image, dtype=np.int64)


METHOD_LABELS = {
    "nearest": "nearest",
    "bilinear": "bilinear",
    "block_max": "2x2 block max",
    "probability": "probability space (area mean, argmax)",
}
BAR_LABELS = {**METHOD_LABELS, "block_max": "2x2\nblock max", "probability": "probability\nspace"}


def boundary_window(changed, side):
    """(top, left, side) of the square window of a changed-pixel mask holding the most changed
    pixels (its corner when none changed)."""
    height, width = changed.shape
    side = min(side, height, width)
    counts = np.pad(changed.astype(np.int64).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    windows = (
        counts[side:, side:]
        - counts[:-side, side:]
        - counts[side:, :-side]
        + counts[:-side, :-side]
    )
    top, left = np.unravel_index(int(np.argmax(windows)), windows.shape)
    return int(top), int(left), side


def interpolation_figure(
    comparison,
    truth,
    nearest,
    bilinear,
    title,
    class_names,
    side=32,
    block_max=None,
    probability=None,
):
    """The resizing panel: mIoU with nearest, bilinear, block max and probability space, then
    a zoomed crop of one image's boundary where nearest and bilinear differ most (truth,
    nearest, bilinear with changed pixels marked, block max and probability space when they
    apply)."""
    palette = class_palette(len(class_names))
    methods = {m: r for m, r in comparison.get("methods", {}).items() if r is not None} or {
        m: {"scores": comparison[m]} for m in ("nearest", "bilinear")
    }
    extra_panels = [
        (label_map, label)
        for label_map, label in (
            (block_max, "2x2 block max"),
            (probability, "probability space"),
        )
        if label_map is not None
    ]
    crop_count = 3 + len(extra_panels)
    figure = new_figure(3.3 * (crop_count + 1.2), 4.4)
    bars, *crops = figure.subplots(1, crop_count + 1, width_ratios=(1.2,) + (1,) * crop_count)
    values = [result["scores"]["miou"] for result in methods.values()]
    colours = {
        "nearest": "tab:green",
        "bilinear": "tab:red",
        "block_max": "tab:orange",
        "probability": "tab:purple",
    }
    names = [BAR_LABELS[m] for m in methods]
    bars.bar(names, values, color=[colours[m] for m in methods])
    for position, value in enumerate(values):
        bars.text(position, value, f"{value:.4f}", ha="center", va="bottom")
    bars.set_ylim(0, max(values) * 1.25 + 0.01)
    bars.set_ylabel("mIoU (dataset)")
    bars.tick_params(axis="x", labelsize=8)
    lines = [
        f"bilinear: {comparison['miou_cost']:+.4f} mIoU, {100 * comparison['changed']:.2f} % "
        f"changed, {100 * comparison['invented']:.2f} % invented"
    ]
    for method, name in (("block_max", "block max"), ("probability", "probability space")):
        if method in methods:
            result = methods[method]
            lines.append(
                f"{name}: {result['miou_delta']:+.4f} mIoU, {100 * result['changed']:.2f} % "
                f"changed, {100 * result['invented']:.2f} % invented"
            )
    bars.set_title("\n".join(lines), fontsize=8)
    changed = np.asarray(nearest) != np.asarray(bilinear)
    top, left, side = boundary_window(changed, side)
    window = (slice(top, top + side), slice(left, left + side))
    panels = [
        (truth, "ground truth"),
        (nearest, "nearest"),
        (bilinear, "bilinear (changed pixels dotted)"),
    ]
    panels += extra_panels
    for axes, (label_map, label) in zip(crops, panels, strict=True):
        axes.imshow(colorize(np.asarray(label_map)[window], palette), interpolation="nearest")
        axes.set_title(label, fontsize=9)
        axes.set_xticks([])
        axes.set_yticks([])
    rows, columns = np.nonzero(changed[window])
    crops[2].scatter(columns, rows, s=6, c="white", edgecolors="black", linewidths=0.3)
    where = f"{title}: rows {top}-{top + side - 1}, columns {left}-{left + side - 1}"
    if not changed.any():
        where += " (nearest and bilinear agree on every pixel of every image)"
    figure.suptitle(literal(where), fontsize=9)
    add_legend(
        figure, class_names, palette, [np.asarray(m)[window] for m in (truth, nearest, bilinear)]
    )
    return figure


def benchmark_runtimes(benchmark_root):
    """{rule: [(job, seconds), ...]} from Snakemake benchmark files
    `<benchmark_root>/<rule>/<job...>.tsv` (first data row's `s` column)."""
    runtimes = {}
    root = Path(benchmark_root)
    for path in sorted(root.glob("*/**/*.tsv")):
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle, delimiter="\t"))
        if not rows or "s" not in rows[0]:
            continue
        rule, *job = path.relative_to(root).with_suffix("").parts
        runtimes.setdefault(rule, []).append(("/".join(job), float(rows[0]["s"])))
    return runtimes


def runtimes_page_html(runtimes):
    """A standalone HTML page: per rule (slowest first) its jobs' summed wall time as a bar,
    the slowest job's as an inner bar, with the job count and the slowest job's name."""
    if not runtimes:
        return f"{page_head('runtimes')}<h1>Runtime per rule</h1><p>no benchmark files yet</p>"
    totals = {rule: sum(s for _, s in jobs) for rule, jobs in runtimes.items()}
    longest = max(totals.values()) or 1.0
    rows = []
    for rule in sorted(runtimes, key=lambda name: -totals[name]):
        job, slowest = max(runtimes[rule], key=lambda entry: entry[1])
        bars = (
            f'<div class="all" style="width:{100 * totals[rule] / longest:.1f}%"></div>'
            f'<div class="slowest" style="width:{100 * slowest / longest:.1f}%"></div>'
        )
        rows.append(
            f'<tr><td class="name">{html.escape(rule)}</td><td>{len(runtimes[rule])}</td>'
            f"<td>{totals[rule]:.2f}</td><td>{slowest:.2f}</td>"
            f'<td class="name">{html.escape(job)}</td><td class="bar">{bars}</td></tr>'
        )
    return (
        f"{page_head('runtimes')}<h1>Runtime per rule</h1>"
        '<table id="runtimes"><tr><th>rule</th><th>jobs</th><th>all jobs (s)</th>'
        "<th>slowest job (s)</th><th>slowest job</th><th>all jobs / slowest job</th></tr>"
        f"{''.join(rows)}</table></body></html>\n"
    )


def save_figure(figure, path):
    """Write a figure as PNG, atomically."""
    with atomic_path(path) as tmp_path:
        figure.savefig(tmp_path, format="png")


def save_text(path, text):
    """Write text, atomically."""
    with atomic_path(path) as tmp_path:
        Path(tmp_path).write_text(text, encoding="utf-8")


def report_figures_stage(
    manifest_path,
    score_paths,
    truth_path,
    resized_paths,
    label_paths,
    class_names,
    outputs,
    worst=3,
    others=3,
    ignore_index=None,
    area_label_paths=(),
):
    """A scored split's report items: `outputs` maps scores (HTML), iou, confusion, samples
    and interpolation (PNG) to their paths. `score_paths`: the split's score files, the one at
    the submission size (that of `truth_path`, `resized_paths` and `area_label_paths`, the
    infer stage's probability-space maps: none when the backend gives no probabilities)
    first."""
    import json

    manifest = Manifest.load(manifest_path)
    entries = {entry.id: entry for entry in manifest.images}
    scores_by_size = {}
    for score_path in score_paths:
        scores = json.loads(Path(score_path).read_text(encoding="utf-8"))
        scores_by_size.setdefault(scores.get("size", Path(score_path).stem), scores)
    scores = next(iter(scores_by_size.values()))
    truth_shard = LabelShard(truth_path)
    image_ids, num_classes = truth_shard.image_ids, len(class_names)
    size = tuple(int(v) for v in truth_shard.shapes[0]) if len(truth_shard) else (1, 1)
    comparison, changed = compare_interpolations(
        batched(maps_in_order(image_ids, label_paths), MAPS_AT_ONCE),
        (truths for _, truths in truth_shard.spans(MAPS_AT_ONCE)),
        size,
        num_classes,
        ignore_index=ignore_index,
        area_spans=(
            batched(maps_in_order(image_ids, area_label_paths), MAPS_AT_ONCE)
            if area_label_paths
            else None
        ),
    )
    log.info("report: mIoU %.4f (score file)", scores["miou"])
    for method, result in comparison["methods"].items():
        if result is None:
            log.info("report: %s: n/a (%s)", method, NOT_AVAILABLE[method])
            continue
        log.info(
            "report: resized %s: mIoU %.4f (%+.4f vs nearest), %.2f %% pixels changed, "
            "%.2f %% invented (%d pixels)",
            method,
            result["scores"]["miou"],
            result["miou_delta"],
            100 * result["changed"],
            100 * result["invented"],
            result["invented_pixels"],
        )
    save_text(outputs["scores"], score_table_html(scores_by_size, class_names, comparison))
    save_figure(iou_bar_figure(scores, class_names), outputs["iou"])
    save_figure(confusion_figure(scores["confusion_matrix"], class_names), outputs["confusion"])
    truths = (truth_shard.read(position) for position in range(len(truth_shard)))
    image_scores = per_image_miou(
        truths, maps_in_order(image_ids, resized_paths), num_classes, ignore_index
    )
    samples = []
    for rank, index in enumerate(pick_samples(image_scores, worst, others)):
        entry = entries[image_ids[index]]
        kind = f"worst #{rank + 1}" if rank < worst else "sample"
        samples.append(
            {
                "title": f"{entry.file_name}\n{kind}, mIoU {_format_iou(image_scores[index])}",
                "image": load_image(Path(manifest.data_root) / entry.path, *entry.size),
                "truth": truth_shard.read(index),
                "prediction": next(maps_in_order([image_ids[index]], resized_paths)),
            }
        )
    save_figure(samples_figure(samples, class_names), outputs["samples"])
    log.info("report: samples %s", ", ".join(s["title"].replace("\n", " ") for s in samples))
    most = int(np.argmax(changed)) if len(changed) else 0
    label_map = [next(maps_in_order([image_ids[most]], label_paths))]
    figure = interpolation_figure(
        comparison,
        truth_shard.read(most),
        resize_label_maps(label_map, size, "albumentations", "nearest")[0],
        resize_label_maps(label_map, size, "albumentations", "bilinear")[0],
        entries[image_ids[most]].file_name,
        class_names,
        block_max=(
            resize_label_maps(label_map, size, "albumentations", "block_max")[0]
            if comparison["block_max"] is not None
            else None
        ),
        probability=(
            next(maps_in_order([image_ids[most]], area_label_paths)) if area_label_paths else None
        ),
    )
    save_figure(figure, outputs["interpolation"])


def report_runtimes_stage(benchmark_root, page_path):
    """The per-rule runtime page from whatever benchmark files exist now."""
    runtimes = benchmark_runtimes(benchmark_root)
    for rule, jobs in sorted(runtimes.items()):
        log.info("runtimes: %s: %d job(s), %.2f s", rule, len(jobs), sum(s for _, s in jobs))
    save_text(page_path, runtimes_page_html(runtimes))


def member_gains(member_scores, ensemble_scores):
    """(M, C) per-class IoU of each member minus the ensemble's (NaN where either is n/a):
    positive where a member alone beats the ensemble on a class, negative where combining helps
    that class."""
    ensemble = np.array([np.nan if v is None else v for v in ensemble_scores["per_class_iou"]])
    members = np.array(
        [[np.nan if v is None else v for v in s["per_class_iou"]] for s in member_scores]
    ).reshape(-1, ensemble.size)
    return members - ensemble


def member_table_html(names, member_scores, ensemble_scores, class_names, search=None):
    """A standalone HTML page: per-class IoU and mIoU of each member and of the ensemble (the
    best member of each class marked), and the weight search's result when there is one."""
    rows_scores = [*member_scores, ensemble_scores]
    head = "".join(f"<th>{html.escape(name)}</th>" for name in [*names, "ensemble"])
    rows = []
    for index, class_name in enumerate(class_names):
        values = [s["per_class_iou"][index] for s in member_scores]
        known = [v for v in values if v is not None]
        best = max(known) if known else None
        cells = "".join(
            f"<td{' class=best' if v is not None and v == best else ''}>{_format_iou(v)}</td>"
            for v in values
        )
        cells += f"<td>{_format_iou(ensemble_scores['per_class_iou'][index])}</td>"
        rows.append(f'<tr><td class="name">{index} {html.escape(class_name)}</td>{cells}</tr>')
    cells = "".join(f"<td>{_format_iou(s['miou'])}</td>" for s in rows_scores)
    rows.append(f'<tr class="summary" id="miou"><th>mIoU (dataset)</th>{cells}</tr>')
    extra = ""
    if search is not None:
        parts = "".join(
            f"<tr><td>{part}</td><td>{search['images'].get(part, '')}</td>"
            f"<td>{values['configured']:.4f}</td><td>{values['searched']:.4f}</td>"
            f"<td>{values['gain']:+.4f}</td></tr>"
            for part, values in search["miou"].items()
        )
        weights = ", ".join(
            f"{html.escape(n)} {c:g} &rarr; {f:g}"
            for n, c, f in zip(
                search["members"], search["configured_weights"], search["searched_weights"],
                strict=True,
            )
        )  # fmt: skip
        extra = (
            "<h2>Weight search (reported, not applied)</h2>"
            f'<p id="weights">Weights: {weights} ({search["evaluations"]} evaluations). Searched '
            "on every other image; the held-out images show whether the gain carries over.</p>"
            '<table id="search"><tr><th>images</th><th>count</th><th>configured mIoU</th>'
            f"<th>searched mIoU</th><th>gain</th></tr>{parts}</table>"
        )
    return (
        f"{page_head('ensemble members')}<h1>Ensemble members</h1>"
        f'<table id="members"><tr><th>class</th>{head}</tr>{"".join(rows)}</table>{extra}'
        "</body></html>\n"
    )


def member_gain_figure(names, gains, class_names):
    """Heatmap of `member_gains` (members x classes): which member beats the ensemble on which
    class (red) and where combining helps (blue)."""
    figure = new_figure(0.5 * len(class_names) + 3, 0.45 * len(names) + 2)
    axes = figure.add_subplot()
    limit = max(float(np.nanmax(np.abs(gains))) if np.isfinite(gains).any() else 0, 1e-3)
    image = axes.imshow(gains, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
    if gains.size <= LABELED_CLASSES * 4:
        for (row, column), value in np.ndenumerate(gains):
            text = "n/a" if np.isnan(value) else f"{value:+.3f}"
            axes.text(column, row, text, ha="center", va="center", fontsize=7)
    axes.set_yticks(range(len(names)), names)
    set_class_ticks(axes, class_names, axis="x", rotation=90)
    figure.colorbar(image, ax=axes, label="member IoU - ensemble IoU")
    axes.set_title("Per-class IoU of each member minus the ensemble's")
    return figure


def report_members_stage(
    member_score_paths, ensemble_score_path, names, class_names, outputs, search_paths=()
):
    """A scored split's ensemble items: `outputs` maps table (HTML) and chart (PNG) to paths;
    `search_paths`: the weight search's json, when it ran on this split."""
    import json

    def read(path):
        return json.loads(Path(path).read_text(encoding="utf-8"))

    member_scores = [read(path) for path in member_score_paths]
    ensemble_scores = read(ensemble_score_path)
    search = read(search_paths[0]) if search_paths else None
    table = member_table_html(names, member_scores, ensemble_scores, class_names, search)
    save_text(outputs["table"], table)
    gains = member_gains(member_scores, ensemble_scores)
    save_figure(member_gain_figure(names, gains, class_names), outputs["chart"])
    for name, scores in zip(names, member_scores, strict=True):
        log.info("report: member %s mIoU %.4f", name, scores["miou"])
    log.info("report: ensemble mIoU %.4f", ensemble_scores["miou"])
