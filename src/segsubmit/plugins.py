"""The extension point: registries of model backends and submission formats.

A plug-in is one module that declares a class and registers it with `@register_backend` or
`@register_format`. Declarations are light (no torch at import: the main snakemake process
reads them while it parses the workflow); what a plug-in needs to run is imported when it runs.
Built-in plug-ins live in `segsubmit.backends` and `segsubmit.formats`; others are named in the
config's `plugins` list (modules importable in every job, e.g. through PYTHONPATH) or installed
under the `segsubmit.plugins` entry-point group.
"""

import importlib
import importlib.metadata
import os
import pkgutil
from dataclasses import dataclass, field
from typing import ClassVar

from .errors import SegsubmitError

BACKENDS = {}
FORMATS = {}
ENTRY_POINT_GROUP = "segsubmit.plugins"
# The config's `plugins`, handed by the workflow to every job it starts (comma-separated).
PLUGINS_VARIABLE = "SEGSUBMIT_PLUGINS"


class Backend:
    """A model backend's declaration: everything the workflow knows about it.

    - `name`: the value of `model.backend`.
    - `options`: JSON-schema properties of its own config section `model.<name>` (each with a
      default and a description: the docs are generated from them).
    - `file_options`: option keys holding files the model is made of (Snakemake inputs, hashed
      in provenance).
    - `uses_normalisation`: whether `model.mean`/`model.std` decide its input.
    - `weights_kind`: "file" or "folder" (what `model.weights` names).
    - `trains_demo_model`: whether `model.weights: null` (the demo model) works with it.
    - `probabilities`: whether its predictor gives class probabilities
      (`backends.base.has_probabilities`), which `resize.interpolation: probability`,
      `pseudo_labels.threshold` and the report's probability-space row need; known while the
      workflow parses, so a config asking for them is refused before any job runs.
    - `conda_env`: its file under envs/; `packages`: distributions its provenance records;
      `install_hint`: how to install what it needs when missing.

    `check_options(section)` adds checks across its keys (one `SegsubmitError` line);
    `load(settings, device)` returns its `Predictor` (`segsubmit.backends.base`) and
    `host_transform(settings, device)` what the DataLoader workers do to each decoded image.
    """

    name: ClassVar[str]
    options: ClassVar[dict] = {}
    file_options: ClassVar[tuple] = ()
    uses_normalisation: ClassVar[bool] = False
    weights_kind: ClassVar[str] = "file"
    trains_demo_model: ClassVar[bool] = False
    probabilities: ClassVar[bool] = True
    conda_env: ClassVar[str] = "torch.yaml"
    packages: ClassVar[tuple] = ("torch",)
    install_hint: ClassVar[str] = ""

    @classmethod
    def check_options(cls, section):
        """One-line error for a `model.<name>` section the schema lets through but that
        cannot work (default: none)."""

    @staticmethod
    def host_transform(settings, device):
        """None, or a picklable callable run in the DataLoader workers on each decoded uint8 RGB
        image (3, H, W), returning the uint8 tensor `Predictor.model_input` expects. Images of
        one original size must come out with one shape (batches are bucketed by original size).
        Known from the settings alone, so workers can decode while the model loads."""
        return None

    @staticmethod
    def load(settings, device, probe_sizes=()):
        """The backend's `Predictor` on `device`, its output checked on `probe_sizes`."""
        raise NotImplementedError


@dataclass(frozen=True)
class FormatSettings:
    """What a format's writer and validator need: class count, map size (h, w), the format's
    own `submission.<format>` options, the class names, the threads to use, the images' COCO
    ids in manifest order (formats that name images by id: coco_rle) and the format's per-shard
    fragments in shard order (formats with `fragments`, once their resize jobs wrote them)."""

    num_classes: int
    size: tuple
    options: dict = field(default_factory=dict)
    class_names: tuple = ()
    threads: int | None = None
    image_ids: tuple = ()
    fragments: tuple = ()

    def names(self):
        """The class names, or the indices as text where only the count is known."""
        return self.class_names or tuple(str(index) for index in range(self.num_classes))


def format_settings(name, submission_options, class_names, size, threads=None, image_ids=(),
                    fragments=()):  # fmt: skip
    """`FormatSettings` of format `name` (`submission_options`: the `submission:` section;
    `class_names`: the names, or a class count where only the count is known)."""
    names = tuple(class_names) if not isinstance(class_names, int) else ()
    count = class_names if isinstance(class_names, int) else len(names)
    options = dict(submission_options.get(name, {}))
    return FormatSettings(count, tuple(size), options, names, threads, tuple(image_ids),
                          tuple(fragments))  # fmt: skip


class SubmissionFormat:
    """A submission format's declaration.

    - `name`: its value in `submission.formats`; `file_name`: the file it writes under
      `<results>/<split>/`.
    - `options`: JSON-schema properties of its config section `submission.<name>`.
    - `write(path, file_names, label_maps, settings)`: write the file (atomically: a file under
      the final name has passed `validate`); `label_maps()` returns a fresh iterator over the
      resized maps in manifest order (read lazily, as often as the format needs);
      `settings`: a `FormatSettings`. Returns the check's summary dict.
    - `validate(path, file_names, settings)`: re-read a finished file and compare it with what
      it must hold; one `SegsubmitError` line naming the first problem. Used by the workflow
      before the final rename and by `segsubmit validate-submission --format <name>`.
    - `fragments`: whether each resize job also writes the shard's part of the file
      (`write_fragment(path, image_ids, label_maps, settings)`: the shard's resized maps,
      checked as they are encoded), so that `write` only gathers them (`settings.fragments`).
    """

    name: ClassVar[str]
    file_name: ClassVar[str]
    options: ClassVar[dict] = {}
    fragments: ClassVar[bool] = False

    @classmethod
    def check_options(cls, section, class_names, size):
        """One-line error for settings this format cannot hold (default: none)."""

    @staticmethod
    def write(path, file_names, label_maps, settings):
        raise NotImplementedError

    @staticmethod
    def validate(path, file_names, settings):
        raise NotImplementedError

    @staticmethod
    def write_fragment(path, image_ids, label_maps, settings):
        raise NotImplementedError


def registrar(registry, base):
    """Class decorator factory registering a subclass of `base` in `registry` by its name."""

    def register(plugin_class):
        if not issubclass(plugin_class, base):
            raise TypeError(f"{plugin_class.__name__} must subclass {base.__name__}")
        registry[plugin_class.name] = plugin_class
        return plugin_class

    return register


register_backend = registrar(BACKENDS, Backend)
register_format = registrar(FORMATS, SubmissionFormat)


def import_package_modules(package_name, suffix):
    """Import the modules of a package whose names end with `suffix` (the built-in plug-ins'
    declarations, which register themselves; their implementations are imported on use)."""
    package = importlib.import_module(package_name)
    for module in pkgutil.iter_modules(package.__path__):
        if module.name.endswith(suffix):
            importlib.import_module(f"{package_name}.{module.name}")


def import_plugin_module(name, key="plugins"):
    """Import a plug-in module named in the config, or one line saying what to do."""
    try:
        importlib.import_module(name)
    except ImportError as err:
        raise SegsubmitError(
            f"{key}: cannot import plug-in module {name!r} ({err}); put its folder on "
            "PYTHONPATH or install its package"
        ) from err


def load_plugins(extra_modules=()):
    """Register the built-in plug-ins, installed ones (entry points), those the workflow named
    in $SEGSUBMIT_PLUGINS and `extra_modules`."""
    import_package_modules("segsubmit.backends", "_backend")
    import_package_modules("segsubmit.formats", "_format")
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        import_plugin_module(entry_point.value, f"entry point {entry_point.name}")
    named = [name for name in os.environ.get(PLUGINS_VARIABLE, "").split(",") if name]
    for name in [*named, *extra_modules]:
        import_plugin_module(name)


def backend_named(name):
    """The registered `Backend` called `name`."""
    if name not in BACKENDS:
        load_plugins()
    if name not in BACKENDS:
        raise SegsubmitError(
            f"model.backend: unknown backend {name!r}; choose one of {sorted(BACKENDS)}"
        )
    return BACKENDS[name]


def format_named(name):
    """The registered `SubmissionFormat` called `name`."""
    if name not in FORMATS:
        load_plugins()
    if name not in FORMATS:
        raise SegsubmitError(
            f"submission.formats: unknown format {name!r}; choose from {sorted(FORMATS)}"
        )
    return FORMATS[name]
