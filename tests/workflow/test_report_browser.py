"""`snakemake --report` on a real run, opened in headless Chromium: no console errors, every
figure shows, the score table holds the run's scores. Screenshots go to the test's tmp dir."""

import json
import os
import re
import shutil
import subprocess

import pytest
from conftest import run_snakemake, tiny_config
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import sync_playwright

pytestmark = pytest.mark.workflow

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# (category, figure label) of every image in the report of a run with one scored split
FIGURES = [
    ("1. Scores", "per_class_iou"),
    ("1. Scores", "confusion"),
    ("2. Predictions", "samples"),
    ("3. Resizing", "nearest_vs_bilinear"),
]


@pytest.fixture(scope="session")
def chromium():
    """Debian's chromium; installed with apt-get when missing and running as root (CI)."""
    path = shutil.which("chromium")
    if path is None and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "chromium"]):
            subprocess.run(command, env=env, capture_output=True, timeout=900, check=False)
        path = shutil.which("chromium")
    if path is None:
        pytest.skip(
            "chromium is not installed and could not be installed (needs root and a reachable "
            "apt): apt-get install chromium"
        )
    return path


@pytest.fixture
def browser_page(chromium, tmp_path):
    """A page of a fresh headless Chromium profile; yields (page, console errors)."""
    errors = []
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=chromium,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1400, "height": 1000},
        )
        page = context.pages[0] if context.pages else context.new_page()
        page.on("pageerror", lambda error: errors.append(f"page error: {error}"))
        page.on(
            "console",
            lambda message: (
                errors.append(f"console {message.type}: {message.text}")
                if message.type == "error"
                else None
            ),
        )
        yield page, errors
        context.close()


def open_result(page, url, category, figure):
    """Load the report, open `category` and click the eye button of the row labelled
    `figure` (the first row when None)."""
    page.goto(url)
    page.get_by_role("link", name=category).click()
    rows = page.locator("tbody tr")
    if figure is not None:
        rows = rows.filter(has=page.locator("td", has_text=re.compile(rf"^{figure}$")))
    rows.first.locator('a[iconname="eye"]').click()


def opened(page, url, category, figure, target, screenshots, attempts=3):
    """`target(page)`, a locator, once visible after `open_result`. The report's app may not
    yet handle a click that comes early on a loaded machine; the page is reloaded and clicked
    again, `attempts` times, with a screenshot of each miss in `screenshots`."""
    for attempt in range(attempts):
        open_result(page, url, category, figure)
        located = target(page)
        try:
            located.wait_for(timeout=20_000)
            return located
        except PlaywrightTimeout:
            page.screenshot(path=screenshots / f"missed-{figure}-{attempt}.png")
    raise AssertionError(f"{category} / {figure}: not shown after {attempts} clicks")


def png_image(page):
    return page.locator("img[src^='data:image/png']")


def framed_table(table_id):
    return lambda page: page.frame_locator("iframe").locator(f"table#{table_id}")


def test_report_shows_scores_and_figures(user_workdir, browser_page, tmp_path):
    tiny_config(user_workdir, score={"at_input_size": True})  # two score columns
    run_snakemake(user_workdir)
    run_snakemake(user_workdir, "--report", "report.html")
    url = (user_workdir / "report.html").as_uri()
    scores = json.loads((user_workdir / "results" / "val" / "score" / "32x32.json").read_text())
    page, errors = browser_page

    page.goto(url)
    for category in {category for category, _ in FIGURES} | {"4. Runtimes"}:
        assert page.get_by_role("link", name=category).is_visible()
    assert "scored the splits ['val']" in page.inner_text("body")
    page.screenshot(path=tmp_path / "report-start.png")

    for category, figure in FIGURES:
        image = opened(page, url, category, figure, png_image, tmp_path)
        width, height = image.evaluate("img => [img.naturalWidth, img.naturalHeight]")
        assert width > 300 and height > 200, (figure, width, height)
        page.screenshot(path=tmp_path / f"report-{figure}.png")

    table = opened(page, url, "1. Scores", "scores", framed_table("scores"), tmp_path)
    text = table.inner_text()
    for name in scores["classes"]:
        assert name in text
    assert "IoU at 32x32" in text and "IoU at input" in text
    assert "mIoU (dataset, competition metric)" in text and f"{scores['miou']:.4f}" in text
    assert f"{scores['per_image_mean_miou']:.4f}" in text
    interpolation = page.frame_locator("iframe").locator("table#interpolation").inner_text()
    rows = ("nearest", "bilinear", "2x2 block max", "probability space (area mean, argmax)")
    for row in rows:  # the downsampling panel's rows
        assert f"\n{row}\t" in interpolation
    assert "vs nearest" in interpolation
    page.screenshot(path=tmp_path / "report-scores.png")

    runtimes = opened(page, url, "4. Runtimes", None, framed_table("runtimes"), tmp_path)
    for rule in ("infer", "resize", "submission", "manifest"):
        assert f"\n{rule}\t" in runtimes.inner_text()
    page.screenshot(path=tmp_path / "report-runtimes.png")

    assert errors == []
