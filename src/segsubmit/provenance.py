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
RESIZE_PACKAGES = {"albumentations": ("albumentations",), "kornia": ("kornia", "torch")}


def file_sha256(path, chunk_size=1 << 20):
    """sha256 (hex) of a file's bytes, read in chunks (weights files are large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def path_sha256(path):
    """`file_sha256` of a file; for a folder (a `save_pretrained` model) sha256 over each file's
    relative name and digest, in name order."""
    path = Path(path)
    if not path.is_dir():
        return file_sha256(path)
    digest = hashlib.sha256()
    for member in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(f"{member.relative_to(path).as_posix()}\0{file_sha256(member)}\n".encode())
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
    """Distribution names that matter for a result made with `settings` (sorted): the core
    ones, the backend's (`settings["model_packages"]`, its declaration's `packages`) and the
    resize backend's."""
    names = {*CORE_PACKAGES, *settings.get("model_packages", ())}
    resize = settings.get("resize")
    if resize:
        names |= set(RESIZE_PACKAGES.get(resize["backend"], ()))
    return sorted(names)


def provenance_record(settings, file_digests, versions):
    """The provenance dict (pure): the rule's `settings` (but the package list), sha256 of
    each model file by role ({'weights': …, 'config_file': …}) and package versions ({name:
    version or None})."""
    return {
        **{key: value for key, value in settings.items() if key != "model_packages"},
        "files_sha256": dict(sorted(file_digests.items())),
        "packages": {"segsubmit": __version__, **dict(sorted(versions.items()))},
    }


def collect_provenance(settings, model_files):
    """`provenance_record` for `settings`, hashing `model_files` ({role: path}) and reading the
    versions installed where this job runs (under `--sdm conda`: this rule's env; a package
    absent there shows as null)."""
    digests = {role: path_sha256(path) for role, path in model_files.items() if path}
    versions = {name: package_version(name) for name in packages_for(settings)}
    return provenance_record(settings, digests, versions)
