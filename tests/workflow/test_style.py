"""The style gates the workflow catalog and this project use, run on the real tools."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO_ROOT

PYTHON_PATHS = ["src", "tests", "workflow/scripts", "bench"]


def tool(name):
    """The tool installed beside this Python (the project's venv), else on PATH."""
    path = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if path is None:
        pytest.skip(f"{name} not installed: pip install -e '.[test]'")
    return path


def run(command):
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_ruff_check():
    run([tool("ruff"), "check", *PYTHON_PATHS])


def test_ruff_format():
    run([tool("ruff"), "format", "--check", *PYTHON_PATHS])


def test_snakefmt():
    run([tool("snakefmt"), "--check", "Snakefile", "workflow/rules"])


def test_snakemake_lint():
    result = run([sys.executable, "-m", "snakemake", "--lint"])
    assert "Congratulations" in result.stdout + result.stderr
