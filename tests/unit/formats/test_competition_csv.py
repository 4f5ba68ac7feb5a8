"""submission.csv: byte-identical to the baseline writer, validated, never half-written."""

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segsubmit.atomic import part_path
from segsubmit.errors import SegsubmitError
from segsubmit.formats.competition_csv import (
    BOM,
    check_label_maps,
    encode_row,
    prediction_summary,
    validate_submission,
    write_submission,
)
from segsubmit.testing import parse_prediction_string, save_manifest, write_submission_baseline

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
    save_manifest(tmp_path / "manifest.json", NAMES)
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
from segsubmit.errors import SegsubmitError
from segsubmit.formats.competition_csv import write_submission
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (300_000, 300_000))
maps = np.zeros((6, 256, 256), np.uint8)
try:
    write_submission(sys.argv[1], [f"{i}.jpg" for i in range(6)], maps)
except SegsubmitError as err:
    print(err)
"""


def test_disk_full_is_one_line_naming_the_file_and_bytes_needed(tmp_path):
    """A real write failure (file size limit, EFBIG): one line with the path and the CSV's full
    size; no csv, no temp file left behind."""
    target = tmp_path / "submission.csv"
    result = subprocess.run(
        [sys.executable, "-c", WRITE_UNDER_FILE_SIZE_LIMIT, str(target)],
        capture_output=True,
        text=True,
    )
    write_submission(tmp_path / "unlimited.csv", [f"{i}.jpg" for i in range(6)],
                     np.zeros((6, 256, 256), np.uint8))  # fmt: skip
    size = (tmp_path / "unlimited.csv").stat().st_size
    assert result.stdout.startswith(f"{target}: cannot write (File too large): needs {size} bytes")
    assert result.stdout.count("\n") == 1, result.stderr
    assert os.listdir(tmp_path) == ["unlimited.csv"]


def test_temporaries_of_killed_writers_are_removed_at_the_next_write(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()  # fmt: skip
    stale = tmp_path / f".submission.csv.{dead}.tmp"
    stale_part = part_path(stale, 3)  # a part of a killed writer's (row fragments have them)
    running = tmp_path / f".submission.csv.{os.getppid()}.tmp"  # a live writer's: kept
    running_part = part_path(running, 0)
    for path in (stale, stale_part, running, running_part):
        path.write_bytes(b"x" * 1000)
    write_submission(tmp_path / "submission.csv", NAMES, random_maps(6))
    assert sorted(os.listdir(tmp_path)) == [running.name, running_part.name, "submission.csv"]


def test_csv_is_checked_before_it_takes_its_final_name(tmp_path):
    """The check runs on the temporary file: a CSV that fails it never appears as
    submission.csv (the workflow's check is `validate_submission` of that file)."""
    target = tmp_path / "submission.csv"

    def check(tmp_file):
        assert tmp_file.name.startswith(".submission.csv.") and not target.exists()
        return validate_submission(tmp_file, NAMES, 5, 256 * 256, name=target)

    with pytest.raises(SegsubmitError, match=f"{target}: line 2 has class 10, outside 0..4"):
        write_submission(target, NAMES, random_maps(6, high=11), check=check)
    assert os.listdir(tmp_path) == []
    assert write_submission(target, NAMES, random_maps(6, high=5), check=check) == 6


def cli(*arguments):
    command = [sys.executable, "-m", "segsubmit.cli", "validate-submission", *map(str, arguments)]
    return subprocess.run(command, capture_output=True, text=True)


def written_submission(tmp_path):
    write_submission(tmp_path / "s.csv", NAMES, random_maps(6))
    save_manifest(tmp_path / "manifest.json", NAMES)
    return tmp_path / "s.csv", tmp_path / "manifest.json"


@pytest.mark.parametrize(
    ("edit", "note"),
    [
        (lambda data: BOM + data, "starts with a UTF-8 byte-order mark; pandas read_csv drops it"),
        (
            lambda data: data.replace(b"\n", b"\r\n"),
            "has CRLF (\\r\\n) line ends; pandas read_csv reads them as plain line ends",
        ),
        (lambda data: data + b"\n", "ends with blank lines; pandas read_csv skips them"),
    ],
)
def test_cli_says_what_pandas_does_with_bom_crlf_and_blank_lines(tmp_path, edit, note):
    csv_path, manifest = written_submission(tmp_path)
    csv_path.write_bytes(edit(csv_path.read_bytes()))
    result = cli(csv_path, manifest)
    assert result.returncode == 0 and "valid" in result.stdout  # as pandas reads it
    assert result.stderr.startswith(f"note: {csv_path}: {note}")
    assert result.stderr.count("\n") == 1
    frame = pd.read_csv(csv_path)
    assert list(frame.columns) == ["image_id", "PredictionString"] and len(frame) == 6


@pytest.mark.parametrize(
    ("manifest", "arguments", "message"),
    [
        ([{"file_name": "a.jpg"}], (), "not a segsubmit manifest (expected"),
        ({"images": [{"id": 1}]}, (), "not a segsubmit manifest"),
        ({"images": "a.jpg"}, (), "not a segsubmit manifest"),
        (None, ("--size", "0", "256"), "argument --size: '0' is not a positive integer"),
        (None, ("--size", "-4", "256"), "argument --size: '-4' is not a positive integer"),
        (None, ("--classes", "0"), "argument --classes: '0' is not a positive integer"),
    ],
)
def test_cli_refuses_wrong_manifests_and_sizes_in_one_line(tmp_path, manifest, arguments, message):
    csv_path, manifest_path = written_submission(tmp_path)
    if manifest is not None:
        manifest_path.write_text(json.dumps(manifest))
    result = cli(csv_path, manifest_path, *arguments)
    assert result.returncode != 0 and message in result.stderr
    assert "Traceback" not in result.stderr


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
