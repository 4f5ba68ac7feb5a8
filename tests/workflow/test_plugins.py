"""A backend and a submission format added from outside the repository: one module in a
temporary package, named in the config's `plugins`, runs through the real workflow. Nothing
in the repository is touched; the schema, the docs table and the rules take it from the
registry."""

import os
import subprocess
import textwrap

import numpy as np
import pytest
from conftest import REPO_ROOT, SNAKEMAKE_ENV, make_dataset, run_snakemake, tiny_config

from segsubmit.config import config_table, load_schema
from segsubmit.labels import read_label_shard
from segsubmit.plugins import BACKENDS, FORMATS

TOY_PLUGIN = textwrap.dedent(
    '''
    """A toy backend (every pixel gets class `model.toy.label`) and a toy format (one line per
    image: file name and its pixel count of each class)."""

    from segsubmit.errors import SegsubmitError
    from segsubmit.plugins import Backend, SubmissionFormat, register_backend, register_format


    @register_backend
    class ToyBackend(Backend):
        name = "toy"
        options = {
            "label": {"type": "integer", "minimum": 0, "default": 1, "description": "the class"}
        }

        @staticmethod
        def load(settings, device):
            import torch

            from segsubmit.backends.base import Predictor

            class ToyPredictor(Predictor):
                def logits(self, batch):
                    scores = torch.zeros((len(batch), self.num_classes, *batch.shape[-2:]))
                    scores[:, settings.options["label"]] = 1.0
                    return scores

            return ToyPredictor(device, settings.num_classes, settings.precision, settings.weights)


    @register_format
    class ToyCounts(SubmissionFormat):
        name = "toy_counts"
        file_name = "counts.txt"

        @staticmethod
        def write(path, file_names, label_maps, settings):
            import numpy as np

            from segsubmit.atomic import atomic_path

            with atomic_path(path) as tmp_path:
                classes = settings.num_classes
                counts = [np.bincount(m.ravel(), minlength=classes) for m in label_maps()]
                lines = [f"{name} {' '.join(map(str, c))}" for name, c in zip(file_names, counts)]
                tmp_path.write_text("\\n".join(lines) + "\\n")
                return ToyCounts.validate(tmp_path, file_names, settings)

        @staticmethod
        def validate(path, file_names, settings):
            names = [line.split(" ")[0] for line in open(path).read().splitlines()]
            if names != list(file_names):
                raise SegsubmitError(f"{path}: names differ from the manifest")
            return {"rows": len(names)}
    '''
)


@pytest.fixture
def toy_package(tmp_path):
    package = tmp_path / "plugins" / "toy_team"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "segsubmit_toy.py").write_text(TOY_PLUGIN)
    return tmp_path / "plugins"


def repository_state():
    """The repository's tracked and untracked files with their content hashes."""
    listed = subprocess.run(
        ["git", "ls-files", "-s", "--others", "--exclude-standard"],
        cwd=REPO_ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return listed.stdout


@pytest.mark.workflow
def test_toy_backend_and_format_run_through_the_real_workflow(tmp_path, toy_package, monkeypatch):
    before = repository_state()
    make_dataset(tmp_path / "data", {"val": 5}, size=32)
    (tmp_path / "model.bin").write_bytes(b"toy")
    tiny_config(
        tmp_path,
        plugins=["toy_team.segsubmit_toy"],
        model={"backend": "toy", "weights": "model.bin", "toy": {"label": 3}},
        submission={"formats": ["competition_csv", "toy_counts"]},
        data={"shards": 1},
    )
    monkeypatch.setitem(
        SNAKEMAKE_ENV,
        "PYTHONPATH",
        os.pathsep.join([str(toy_package), SNAKEMAKE_ENV["PYTHONPATH"]]),
    )
    run_snakemake(tmp_path)
    results = tmp_path / "results" / "val"
    _, label_maps = read_label_shard(results / "labels" / "0.npz")
    assert all((label_map == 3).all() for label_map in label_maps)
    counts = (results / "counts.txt").read_text().splitlines()
    assert len(counts) == 5 and all(line.split()[4] == str(32 * 32) for line in counts)
    assert (results / "submission.csv").read_text().count("\n") == 6
    assert repository_state() == before  # the plug-in touched no file of the repository


@pytest.fixture
def restored_registries():
    """The registries as they were before the test (it registers the toy plug-ins here)."""
    saved = dict(BACKENDS), dict(FORMATS)
    yield
    for registry, contents in zip((BACKENDS, FORMATS), saved, strict=True):
        registry.clear()
        registry.update(contents)


def test_plugin_sections_join_the_schema_and_the_docs(
    toy_package, monkeypatch, restored_registries
):
    monkeypatch.syspath_prepend(str(toy_package))
    schema = load_schema(plugin_modules=["toy_team.segsubmit_toy"])
    model = schema["properties"]["model"]["properties"]
    assert "toy" in model["backend"]["enum"] and model["toy"]["properties"]["label"]["default"]
    assert (
        "toy_counts" in schema["properties"]["submission"]["properties"]["formats"]["items"]["enum"]
    )
    assert "| `model.toy.label` | `1` | the class |" in config_table(schema)
    assert np.all(np.isin(["torchvision", "smp", "transformers"], model["backend"]["enum"]))
