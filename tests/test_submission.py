"""submission.csv: byte-identical to the baseline writer, validated, never half-written."""

import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segsubmit.errors import SegsubmitError
from segsubmit.submission import (
    check_label_maps,
    encode_row,
    prediction_summary,
    validate_submission,
    write_submission,
)
from segsubmit.testing import parse_prediction_string, write_submission_baseline

NAMES = [f"batch_01_vt/{i:04d}.jpg" for i in range(6)]


def random_maps(count, high=11, size=(256, 256), seed=0):
    return np.random.default_rng(seed).integers(0, high, (count, *size), dtype=np.uint8)


def test_byte_identical_to_baseline(tmp_path):
    maps = random_maps(6)
    write_submission(tmp_path / "fast.csv", NAMES, maps)
    write_submission_baseline(tmp_path / "baseline.csv", NAMES, maps)
    assert (tmp_path / "fast.csv").read_bytes() == (tmp_path / "baseline.csv").read_bytes()


@settings(max_examples=40, deadline=None)
@given(
    values=st.lists(st.integers(0, 255), min_size=1, max_size=300),
    name=st.text(min_size=1, max_size=20).filter(lambda s: "\r" not in s and "\x00" not in s),
)
def test_rows_match_str_join_for_any_values_and_names(tmp_path_factory, values, name):
    folder = tmp_path_factory.mktemp("csv")
    label_map = np.array(values, dtype=np.uint8)[None]
    write_submission(folder / "fast.csv", [name], [label_map])
    write_submission_baseline(folder / "baseline.csv", [name], [label_map])
    assert (folder / "fast.csv").read_bytes() == (folder / "baseline.csv").read_bytes()
    assert encode_row(label_map).tobytes() == (" ".join(map(str, values)) + "\n").encode()


def test_validator_accepts_written_file(tmp_path):
    write_submission(tmp_path / "s.csv", NAMES, random_maps(6))
    assert validate_submission(tmp_path / "s.csv", NAMES, 11, 256 * 256) == 6


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda text: text.replace("image_id,", "id,", 1), "header"),
        (lambda text: "\n".join(text.split("\n")[:-2]) + "\n", "5 rows"),
        (lambda text: text.replace("0001.jpg", "0009.jpg"), "manifest order"),
        (
            lambda text: (
                text.replace(",0 ", ",11 ", 1).replace(",1 ", ",11 ", 1).replace(",2 ", ",11 ", 1)
            ),
            "outside 0..10",
        ),
        (lambda text: text.replace(" 3 ", " 3  ", 1), "not space-separated"),
        (lambda text: text.replace(" 4 ", " x ", 1), "not space-separated"),
        (lambda text: text.replace(" 5\n", "\n", 1), "65535 values"),
    ],
)
def test_validator_names_the_problem(tmp_path, mutate, message):
    maps = random_maps(6, high=10)
    maps[:, 0, 0] = [0, 1, 2, 0, 1, 2]
    maps[:, -1, -1] = 5
    write_submission(tmp_path / "s.csv", NAMES, maps)
    text = (tmp_path / "s.csv").read_text()
    (tmp_path / "s.csv").write_text(mutate(text))
    with pytest.raises(SegsubmitError, match=message):
        validate_submission(tmp_path / "s.csv", NAMES, 11, 256 * 256)


def test_cli_validates(tmp_path):
    write_submission(tmp_path / "s.csv", NAMES, random_maps(6))
    (tmp_path / "manifest.json").write_text(
        '{"images": [' + ",".join(f'{{"file_name": "{n}"}}' for n in NAMES) + "]}"
    )
    command = [
        sys.executable,
        "-m",
        "segsubmit.cli",
        "validate-submission",
        str(tmp_path / "s.csv"),
        str(tmp_path / "manifest.json"),
    ]
    ok = subprocess.run(command, capture_output=True, text=True)
    assert ok.returncode == 0 and "valid" in ok.stdout
    bad = subprocess.run(command + ["--classes", "5"], capture_output=True, text=True)
    assert bad.returncode == 1 and "outside 0..4" in bad.stderr


WRITE_UNDER_FILE_SIZE_LIMIT = """
import resource, signal, sys
import numpy as np
from segsubmit.submission import write_submission
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (300_000, 300_000))
maps = np.zeros((6, 256, 256), np.uint8)
try:
    write_submission(sys.argv[1], [f"{i}.jpg" for i in range(6)], maps)
except OSError as err:
    print("write failed:", err.strerror)
"""


def test_disk_full_leaves_no_submission(tmp_path):
    """A real write failure (file size limit, EFBIG): no csv, no temp file left behind."""
    target = tmp_path / "submission.csv"
    result = subprocess.run(
        [sys.executable, "-c", WRITE_UNDER_FILE_SIZE_LIMIT, str(target)],
        capture_output=True,
        text=True,
    )
    assert "write failed" in result.stdout, result.stderr
    assert os.listdir(tmp_path) == []


def test_maps_are_checked_before_writing():
    maps = random_maps(2, size=(8, 8))
    check_label_maps(maps, (8, 8), 11)
    with pytest.raises(SegsubmitError, match=r"label map 1 is \(4, 4\)"):
        check_label_maps([maps[0], maps[1][:4, :4]], (8, 8), 11)
    with pytest.raises(SegsubmitError, match="class 12, outside 0..10"):
        check_label_maps([np.full((8, 8), 12, np.uint8)], (8, 8), 11)


@settings(max_examples=200, deadline=None)
@given(
    tokens=st.lists(
        st.from_regex(r"\A[0-9]{1,4}\Z") | st.sampled_from(["", "x", "-1"]), max_size=30
    ),
    separator=st.sampled_from([" ", "  ", ","]),
)
def test_prediction_summary_agrees_with_the_reference_parser(tokens, separator):
    text = separator.join(tokens)
    values = parse_prediction_string(text)
    expected = None if values is None else (values.size, int(values.max()))
    assert prediction_summary(text) == expected
