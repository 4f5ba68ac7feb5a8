"""What made a result: the settings the rule passed (backend, architecture, precision, resize,
sizes, code digests), digests of the model files, and the versions of the packages in the job.
`score/<size>.json` and `submission.valid.json` carry it under "provenance"."""

import hashlib
import importlib.metadata
import importlib.util
from pathlib import Path

from . import __version__

# Distribution names whose versions decide the numbers (by the module that needs them).
CORE_PACKAGES = ("snakemake", "numpy", "pycocotools", "opencv-python-headless", "pillow")
BACKEND_PACKAGES = {
    "torchvision": ("torch", "torchvision"),
    "torchscript": ("torch",),
    "detectron2": ("torch", "torchvision", "detectron2"),
}
RESIZE_PACKAGES = {"albumentations": ("albumentations",), "kornia": ("kornia", "torch")}


def file_sha256(path, chunk_size=1 << 20):
    """sha256 (hex) of a file's bytes, read in chunks (weights files are large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def package_version(name):
    """The installed version of distribution `name`; for an importable module without
    distribution metadata (a source checkout on PYTHONPATH) 'source at <folder>'; else None."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        spec = importlib.util.find_spec(name.replace("-", "_"))
        if spec is None or not spec.origin:
            return None
        return f"source at {Path(spec.origin).parent}"


def packages_for(settings):
    """Distribution names that matter for a result made with `settings` (sorted)."""
    names = {*CORE_PACKAGES, *BACKEND_PACKAGES.get(settings.get("model", {}).get("backend"), ())}
    resize = settings.get("resize")
    if resize:
        names |= set(RESIZE_PACKAGES.get(resize["backend"], ()))
    return sorted(names)


def provenance_record(settings, file_digests, versions):
    """The provenance dict (pure): the rule's `settings`, sha256 of each model file by role
    ({'weights': …, 'model_config': …}) and package versions ({name: version or None})."""
    return {
        **settings,
        "files_sha256": dict(sorted(file_digests.items())),
        "packages": {"segsubmit": __version__, **dict(sorted(versions.items()))},
    }


def collect_provenance(settings, model_files):
    """`provenance_record` for `settings`, hashing `model_files` ({role: path}) and reading the
    versions installed where this job runs (under `--sdm conda`: this rule's env; a package
    absent there shows as null)."""
    digests = {role: file_sha256(path) for role, path in model_files.items() if path}
    versions = {name: package_version(name) for name in packages_for(settings)}
    return provenance_record(settings, digests, versions)
