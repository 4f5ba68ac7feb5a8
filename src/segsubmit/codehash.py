"""Digest of package modules, passed to rules as a param so editing the code a rule runs
reruns it (Snakemake tracks only the rule's own script)."""

import hashlib
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def source_digest(*module_paths):
    """sha256 (first 16 hex) over the named files/folders of the package, e.g. 'resize.py'."""
    digest = hashlib.sha256()
    for module_path in sorted(module_paths):
        path = PACKAGE_DIR / module_path
        files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
        for file in files:
            digest.update(file.relative_to(PACKAGE_DIR).as_posix().encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()[:16]
